package download

import (
	"sort"
	"sync/atomic"
	"time"
)

// Phase of one file.
type Phase string

const (
	PhaseWaiting     Phase = "waiting"     // another process or goroutine is downloading it
	PhaseResolving   Phase = "resolving"   // size probe
	PhaseDownloading Phase = "downloading" // bytes flowing
	PhaseVerifying   Phase = "verifying"   // all bytes written; hashing the tail
	PhasePublishing  Phase = "publishing"  // fsync, checks, rename
	PhaseDone        Phase = "done"
	PhaseFailed      Phase = "failed"
)

// FileStatus is one file's progress.
type FileStatus struct {
	Name  string `json:"name"`
	MD5   string `json:"md5,omitempty"`
	Phase Phase  `json:"phase"`
	// Total size in bytes, -1 while unknown.
	Total int64 `json:"total"`
	// Network bytes received by this process; Reused bytes adopted from an
	// interrupted earlier download.
	Network int64 `json:"network_bytes"`
	Reused  int64 `json:"reused_bytes"`
	// Holder bytes: while waiting, what the process we wait for has on disk.
	Holder int64 `json:"holder_bytes,omitempty"`
	// Rate in bytes/s over the last second.
	Rate  float64 `json:"rate"`
	Error string  `json:"error,omitempty"`
}

// Totals sums all files the engine is working on.
type Totals struct {
	Files   int     `json:"files"`
	Active  int     `json:"active"`
	Total   int64   `json:"total"` // sum of known sizes
	Network int64   `json:"network_bytes"`
	Reused  int64   `json:"reused_bytes"`
	Rate    float64 `json:"rate"`
}

// EventType distinguishes events.
type EventType string

const (
	// EventPhase: a file changed phase (File set).
	EventPhase EventType = "phase"
	// EventProgress: periodic snapshot of every active file (Files, Totals).
	EventProgress EventType = "progress"
)

// Event is delivered to an Observer.
type Event struct {
	Time   time.Time    `json:"time"`
	Type   EventType    `json:"type"`
	File   *FileStatus  `json:"file,omitempty"`
	Files  []FileStatus `json:"files,omitempty"`
	Totals *Totals      `json:"totals,omitempty"`
}

// Observer receives progress events. Calls come from engine goroutines, one
// at a time; an observer must not block for long.
type Observer interface {
	Observe(Event)
}

// ObserverFunc adapts a function.
type ObserverFunc func(Event)

func (f ObserverFunc) Observe(ev Event) { f(ev) }

// fileProgress tracks one file for events.
type fileProgress struct {
	e       *Engine
	name    string
	md5     string
	total   atomic.Int64
	network atomic.Int64
	reused  atomic.Int64
	holder  atomic.Int64
	phase   atomic.Value // Phase
	errText atomic.Value // string
	samples []sample     // guarded by Engine.mu (ticker only)
}

type sample struct {
	t time.Time
	n int64
}

func (e *Engine) track(name, md5 string, size int64) *fileProgress {
	fp := &fileProgress{e: e, name: name, md5: md5}
	if size <= 0 {
		size = -1
	}
	fp.total.Store(size)
	fp.phase.Store(PhaseResolving)
	fp.errText.Store("")
	if e.observer == nil {
		return fp
	}
	e.mu.Lock()
	e.files[fp] = struct{}{}
	start := !e.ticking
	e.ticking = true
	e.mu.Unlock()
	if start {
		go e.progressLoop()
	}
	return fp
}

func (fp *fileProgress) setTotal(n int64) {
	if n < 0 {
		n = -1
	}
	fp.total.Store(n)
}

func (fp *fileProgress) setHolder(bytes, size int64) {
	fp.holder.Store(bytes)
	if size > 0 && fp.total.Load() < 0 {
		fp.total.Store(size)
	}
}

func (fp *fileProgress) setPhase(p Phase) {
	if old, _ := fp.phase.Load().(Phase); old == p {
		return
	}
	fp.phase.Store(p)
	if fp.e.observer != nil {
		st := fp.status(0)
		fp.e.emit(Event{Time: time.Now(), Type: EventPhase, File: &st})
	}
}

func (fp *fileProgress) finish(err error) {
	if err != nil {
		fp.errText.Store(err.Error())
		fp.setPhase(PhaseFailed)
	} else {
		fp.setPhase(PhaseDone)
	}
	if fp.e.observer == nil {
		return
	}
	fp.e.mu.Lock()
	delete(fp.e.files, fp)
	fp.e.mu.Unlock()
}

func (fp *fileProgress) status(rate float64) FileStatus {
	ph, _ := fp.phase.Load().(Phase)
	et, _ := fp.errText.Load().(string)
	return FileStatus{Name: fp.name, MD5: fp.md5, Phase: ph, Total: fp.total.Load(), Network: fp.network.Load(),
		Reused: fp.reused.Load(), Holder: fp.holder.Load(), Rate: rate, Error: et}
}

// emit serialises observer calls.
func (e *Engine) emit(ev Event) {
	e.obsMu.Lock()
	defer e.obsMu.Unlock()
	e.observer.Observe(ev)
}

// progressLoop emits snapshots while any file is tracked, then exits.
func (e *Engine) progressLoop() {
	t := time.NewTicker(e.tune.ProgressInterval)
	defer t.Stop()
	for now := range t.C {
		e.mu.Lock()
		if len(e.files) == 0 {
			e.ticking = false
			e.mu.Unlock()
			return
		}
		files := make([]*fileProgress, 0, len(e.files))
		for fp := range e.files {
			files = append(files, fp)
		}
		rates := make([]float64, len(files))
		for i, fp := range files {
			n := fp.network.Load()
			fp.samples = append(fp.samples, sample{now, n})
			// Sliding window of about one second.
			for len(fp.samples) > 2 && now.Sub(fp.samples[1].t) >= time.Second {
				fp.samples = fp.samples[1:]
			}
			if s0 := fp.samples[0]; now.Sub(s0.t) > 0 {
				rates[i] = float64(n-s0.n) / now.Sub(s0.t).Seconds()
			}
		}
		e.mu.Unlock()
		ev := Event{Time: now, Type: EventProgress, Totals: &Totals{}}
		for i, fp := range files {
			st := fp.status(rates[i])
			ev.Files = append(ev.Files, st)
			ev.Totals.Files++
			if st.Phase != PhaseWaiting {
				ev.Totals.Active++
			}
			ev.Totals.Total += max(st.Total, 0)
			ev.Totals.Network += st.Network
			ev.Totals.Reused += st.Reused
			ev.Totals.Rate += st.Rate
		}
		sort.Slice(ev.Files, func(a, b int) bool { return ev.Files[a].Name < ev.Files[b].Name })
		e.emit(ev)
	}
}
