package journal

import (
	"os"
	"strconv"
	"strings"
	"time"
)

// ProcessStartTime returns the start time of pid in clock ticks since boot
// (field 22 of /proc/<pid>/stat), "" where /proc is unavailable. Together
// with the pid it identifies a process: pids are reused, start times are not.
func ProcessStartTime(pid int) string {
	_, start := procStat(pid)
	return start
}

// ProcessState returns the state letter of pid (field 3 of
// /proc/<pid>/stat: R, S, D, Z …), "" where unknown.
func ProcessState(pid int) string {
	state, _ := procStat(pid)
	return state
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

// PIDAlive reports whether a process with pid runs on this host and, when
// startTime is known, is the same process that recorded it. A zombie
// (killed, not yet reaped by its parent) still has a /proc entry but writes
// nothing more: it counts as dead, or nobody could take over its partial.
// Where /proc is unavailable a signal-0 probe decides (and where that is
// unavailable too, the owner is presumed alive: never delete).
func PIDAlive(pid int, startTime string) bool {
	if pid <= 0 {
		return false
	}
	if state, st := procStat(pid); st != "" {
		if state == "Z" || state == "X" {
			return false
		}
		return startTime == "" || st == startTime
	}
	if _, err := os.Stat("/proc/self/stat"); err == nil {
		return false // procfs works and has no such pid
	}
	return signalZero(pid)
}

// Liveness decides whether a journal's owner may still write to its
// partial (download.md §3 rule 3).
type Liveness struct {
	// Self is the deciding process. An owner with its host, pid and start
	// time is this very process: TokenActive then says whether the token
	// is still in use (nil: presumed in use).
	Self        Owner
	TokenActive func(token string) bool
	// RemoteStale: an owner on another host, whose pid cannot be checked
	// from here, counts as dead once its heartbeat is older than this.
	RemoteStale time.Duration
}

// Self returns the identity of the running process.
func Self() Owner {
	host, _ := os.Hostname()
	pid := os.Getpid()
	return Owner{Host: host, PID: pid, StartTime: ProcessStartTime(pid)}
}

// Alive applies the rule: on this host by pid and start time (and, for
// this process, by whether the token is still in use); on another host by
// a heartbeat younger than RemoteStale.
func (l Liveness) Alive(o Owner, heartbeat, now time.Time) bool {
	if o.Host == l.Self.Host {
		if o.PID == l.Self.PID && (o.StartTime == "" || o.StartTime == l.Self.StartTime) {
			return l.TokenActive == nil || l.TokenActive(o.Token)
		}
		return PIDAlive(o.PID, o.StartTime)
	}
	return now.Sub(heartbeat) < l.RemoteStale
}

// Abandoned is the garbage collector's rule (download.md §3 rule 7): a
// partial goes only when its owner is dead and its heartbeat is older than
// grace. data is the journal's content (nil: the partial has none); without
// a readable journal the partial's mtime stands in for the heartbeat and
// its age alone decides.
func Abandoned(data []byte, mtime, now time.Time, grace time.Duration) bool {
	if data == nil {
		return now.Sub(mtime) >= grace
	}
	j, err := Parse(data)
	if err != nil {
		return now.Sub(mtime) >= grace
	}
	beat := j.Heartbeat()
	if beat.IsZero() {
		beat = mtime
	}
	if now.Sub(beat) < grace {
		return false
	}
	l := Liveness{Self: Self(), RemoteStale: grace}
	return !l.Alive(j.Owner, beat, now)
}
