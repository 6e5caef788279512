package maintain

import (
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/modelcache/modelcache/internal/offlinereg"
)

// journal is the part of a partial's journal (download.md §3) GC needs.
type journal struct {
	Owner struct {
		Host      string `json:"host"`
		PID       int    `json:"pid"`
		StartTime string `json:"start_time"`
	} `json:"owner"`
	HeartbeatAt string `json:"heartbeat_at"`
}

// partialAbandoned applies download.md §3 rule 7: a partial goes only when
// its owner is dead and its heartbeat (journal-less: its mtime) is older than
// grace. On another host the owner counts as dead once the heartbeat is that
// old, since its pid cannot be checked from here.
func partialAbandoned(journalData []byte, mtime, now time.Time, grace time.Duration) bool {
	if journalData == nil {
		return now.Sub(mtime) >= grace
	}
	var j journal
	if json.Unmarshal(journalData, &j) != nil {
		return now.Sub(mtime) >= grace
	}
	beat := mtime
	if t, ok := offlinereg.ParseTimestamp(j.HeartbeatAt); ok {
		beat = t
	}
	if now.Sub(beat) < grace {
		return false
	}
	host, _ := os.Hostname()
	if j.Owner.Host == host && j.Owner.PID > 0 {
		return !processAlive(j.Owner.PID, j.Owner.StartTime)
	}
	return true
}

// processAlive reports whether pid runs on this host and, when startTime
// (clock ticks since boot, /proc/<pid>/stat field 22) is known, is the same
// process and not a later one that reused the pid.
func processAlive(pid int, startTime string) bool {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		return signalZero(pid) // no procfs here
	}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return !os.IsNotExist(err)
	}
	if startTime == "" {
		return true
	}
	// Field 2 (comm) may contain spaces and parentheses: count after the last ')'.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return true
	}
	fields := strings.Fields(s[i+1:])
	// fields[0] is field 3 (state); field 22 is fields[19].
	if len(fields) < 20 {
		return true
	}
	return fields[19] == startTime
}
