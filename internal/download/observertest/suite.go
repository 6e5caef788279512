// Package observertest is the conformance suite of download.Observer: every
// progress observer (JSON lines, log lines, terminal bars, a library user's
// own) runs Run, so that each takes every event the engine can send.
package observertest

import (
	"testing"
	"time"

	"github.com/modelcache/modelcache/internal/download"
)

// Run feeds the observers newObserver makes every kind of event stream the
// engine produces, from one goroutine at a time as the engine does, and
// checks that Observe returns (a display must never hold up a download).
// check, if not nil, inspects what an observer produced after each stream
// (its output, say) and fails the test when it is wrong.
func Run(t *testing.T, newObserver func(t *testing.T) download.Observer, check func(t *testing.T, name string)) {
	for _, s := range streams() {
		t.Run(s.name, func(t *testing.T) {
			o := newObserver(t)
			done := make(chan struct{})
			go func() {
				defer close(done)
				for _, ev := range s.events {
					o.Observe(ev)
				}
			}()
			select {
			case <-done:
			case <-time.After(time.Minute):
				t.Fatal("Observe did not return within a minute: an observer must not block the engine")
			}
			if check != nil {
				check(t, s.name)
			}
		})
	}
}

type stream struct {
	name   string
	events []download.Event
}

func streams() []stream {
	t0 := time.Unix(1_800_000_000, 0)
	file := func(name string, ph download.Phase, total, net, reused int64, errText string) download.Event {
		return download.Event{Time: t0, Type: download.EventPhase, File: &download.FileStatus{
			Name: name, MD5: "0123456789abcdef0123456789abcdef", Phase: ph, Total: total, Network: net, Reused: reused, Error: errText}}
	}
	progress := func(files []download.FileStatus, tot download.Totals) download.Event {
		return download.Event{Time: t0, Type: download.EventProgress, Files: files, Totals: &tot}
	}
	var many []download.FileStatus
	for i := 0; i < 200; i++ {
		many = append(many, download.FileStatus{Name: "f" + string(rune('a'+i%26)), Phase: download.PhaseDownloading, Total: 1 << 20, Network: int64(i) << 12, Rate: 1e6})
	}
	long := make([]byte, 4096)
	for i := range long {
		long[i] = 'x'
	}
	return []stream{
		{"one file, every phase", []download.Event{
			file("weights.onnx", download.PhaseResolving, -1, 0, 0, ""),
			file("weights.onnx", download.PhaseDownloading, 100, 0, 0, ""),
			progress([]download.FileStatus{{Name: "weights.onnx", Phase: download.PhaseDownloading, Total: 100, Network: 50, Rate: 10}},
				download.Totals{Files: 1, Active: 1, Total: 100, Network: 50, Rate: 10}),
			file("weights.onnx", download.PhaseVerifying, 100, 100, 0, ""),
			file("weights.onnx", download.PhasePublishing, 100, 100, 0, ""),
			file("weights.onnx", download.PhaseDone, 100, 100, 0, ""),
		}},
		{"unknown size, then failure", []download.Event{
			file("labels.txt", download.PhaseDownloading, -1, 0, 0, ""),
			progress([]download.FileStatus{{Name: "labels.txt", Phase: download.PhaseDownloading, Total: -1, Network: 1 << 30}},
				download.Totals{Files: 1, Active: 1, Total: 0, Network: 1 << 30}),
			file("labels.txt", download.PhaseFailed, -1, 1<<30, 0, "connection reset by peer"),
		}},
		{"waiting for another process, resumed bytes", []download.Event{
			file("w", download.PhaseWaiting, 1<<40, 0, 0, ""),
			{Time: t0, Type: download.EventPhase, File: &download.FileStatus{Name: "w", Phase: download.PhaseWaiting, Total: 1 << 40, Holder: 1 << 39}},
			file("w", download.PhaseDownloading, 1<<40, 0, 1<<39, ""),
			file("w", download.PhaseDone, 1<<40, 1<<39, 1<<39, ""),
		}},
		{"empty and zero", []download.Event{
			{Time: t0, Type: download.EventProgress},
			progress(nil, download.Totals{}),
			file("", download.PhaseDone, 0, 0, 0, ""),
		}},
		{"two hundred files at once", []download.Event{progress(many, download.Totals{Files: 200, Active: 200, Total: 200 << 20})}},
		{"hostile names and errors", []download.Event{
			file("a\x1b]0;x\x07\nb", download.PhaseDownloading, 10, 5, 0, ""),
			file(string(long), download.PhaseFailed, 10, 5, 0, "\x1b[2J"+string(long)),
		}},
		{"unknown event type", []download.Event{{Time: t0, Type: download.EventType("from-a-newer-engine")}}},
	}
}
