package download

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// processStartTime returns the start time of pid in clock ticks since boot
// (field 22 of /proc/<pid>/stat), "" where /proc is unavailable. Together
// with the pid it identifies a process: pids are reused, start times are not.
func processStartTime(pid int) string {
	_, start := procStat(pid)
	return start
}

// procStat returns the state (field 3) and start time (field 22) of pid.
func procStat(pid int) (state, start string) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", ""
	}
	// The command name (field 2) may contain spaces and parentheses: skip
	// past its last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return "", ""
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); the start time is field 22.
	if len(f) < 20 {
		return "", ""
	}
	return f[0], f[19]
}

// pidAlive reports whether a process with pid exists and, when both start
// times are known, is the same process that wrote startTime. A zombie (killed,
// not yet reaped by its parent) still has a /proc entry but writes nothing
// more: it counts as dead, or a waiter could not take over from it.
func pidAlive(pid int, startTime string) bool {
	if pid <= 0 {
		return false
	}
	if state, st := procStat(pid); st != "" {
		if state == "Z" || state == "X" {
			return false
		}
		return startTime == "" || st == startTime
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// ownerAlive decides whether a journal's owner may still write to its
// partial (download.md §3 rule 3): on this host by pid and start time (and,
// for this very process, by whether the token is still in use); on another
// host by a heartbeat younger than twice the stall timeout.
func (e *Engine) ownerAlive(o journalOwner, heartbeat time.Time) bool {
	if o.Host == e.host {
		if o.PID == e.pid && (o.StartTime == "" || o.StartTime == e.startTime) {
			return e.tokenActive(o.Token)
		}
		return pidAlive(o.PID, o.StartTime)
	}
	return time.Since(heartbeat) < 2*e.tune.StallTimeout
}
