package download

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/modelcache/modelcache/internal/textsafe"
)

// JSONLines writes every event as one JSON object per line: the
// machine-readable stream (for --json / scripts).
func JSONLines(w io.Writer) Observer {
	var mu sync.Mutex
	enc := json.NewEncoder(w)
	return ObserverFunc(func(ev Event) {
		mu.Lock()
		defer mu.Unlock()
		_ = enc.Encode(ev)
	})
}

// LogLines reports through a logger for non-interactive output: phase
// changes at debug level, and at most one line per file per interval while
// it downloads (download.md §2.9: one line per file per 10 s).
func LogLines(log *slog.Logger, every time.Duration) Observer {
	var mu sync.Mutex
	last := map[string]time.Time{}
	return ObserverFunc(func(ev Event) {
		mu.Lock()
		defer mu.Unlock()
		switch ev.Type {
		case EventPhase:
			f := ev.File
			if f.Phase == PhaseDone || f.Phase == PhaseFailed {
				delete(last, f.Name)
			}
			log.Debug("download phase", "file", f.Name, "phase", string(f.Phase))
		case EventProgress:
			for _, f := range ev.Files {
				if t, ok := last[f.Name]; ok && ev.Time.Sub(t) < every {
					continue
				}
				if _, seen := last[f.Name]; !seen {
					last[f.Name] = ev.Time
					continue // the first line after a full interval
				}
				last[f.Name] = ev.Time
				log.Info(fmt.Sprintf("%s: %s %s of %s at %s/s", f.Name, f.Phase, human(f.Network+f.Reused), humanTotal(f.Total), human(int64(f.Rate))),
					"file", f.Name, "phase", string(f.Phase), "bytes", f.Network+f.Reused, "total", f.Total)
			}
		}
	})
}

// Bars draws one line per active file plus a total line on a terminal,
// redrawn in place.
func Bars(w io.Writer) Observer {
	b := &bars{w: w}
	return ObserverFunc(b.observe)
}

type bars struct {
	mu    sync.Mutex
	w     io.Writer
	lines int
}

func (b *bars) observe(ev Event) {
	if ev.Type != EventProgress {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var sb strings.Builder
	if b.lines > 0 {
		fmt.Fprintf(&sb, "\x1b[%dA", b.lines)
	}
	n := 0
	for _, f := range ev.Files {
		sb.WriteString("\x1b[2K")
		sb.WriteString(barLine(textsafe.String(f.Name), string(f.Phase), f.Network+f.Reused, f.Total, f.Rate))
		sb.WriteByte('\n')
		n++
	}
	if t := ev.Totals; t != nil {
		sb.WriteString("\x1b[2K")
		sb.WriteString(barLine(fmt.Sprintf("total (%d files)", t.Files), "", t.Network+t.Reused, t.Total, t.Rate))
		sb.WriteByte('\n')
		n++
	}
	// Clear lines left over from a longer previous frame.
	for i := n; i < b.lines; i++ {
		sb.WriteString("\x1b[2K\n")
	}
	if b.lines > n {
		fmt.Fprintf(&sb, "\x1b[%dA", b.lines-n)
	}
	b.lines = n
	_, _ = io.WriteString(b.w, sb.String())
}

func barLine(name, phase string, done, total int64, rate float64) string {
	const width = 24
	if len(name) > 32 {
		name = "…" + name[len(name)-31:]
	}
	bar := strings.Repeat(" ", width)
	pct := ""
	eta := ""
	if total > 0 {
		fill := int(float64(width) * float64(min(done, total)) / float64(total))
		bar = strings.Repeat("█", fill) + strings.Repeat("░", width-fill)
		pct = fmt.Sprintf("%3d%%", 100*min(done, total)/total)
		if rate > 0 && done < total {
			eta = " ETA " + time.Duration(float64(total-done)/rate*float64(time.Second)).Round(time.Second).String()
		}
	}
	return fmt.Sprintf("%-32s %-11s %s %s %9s / %-9s %9s/s%s", name, phase, bar, pct, human(done), humanTotal(total), human(int64(rate)), eta)
}

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func humanTotal(n int64) string {
	if n < 0 {
		return "?"
	}
	return human(n)
}

// DefaultObserver picks the CLI's progress display: bars on a terminal
// unless DISABLE_INTERACTIVE_PROGRESS_BARS is set, else log lines every
// 10 s. Library users get no observer unless they ask (lessons U13).
func DefaultObserver(out *os.File, disableBars bool, log *slog.Logger) Observer {
	if !disableBars && isTerminal(out) {
		return Bars(out)
	}
	return LogLines(log, 10*time.Second)
}
