package xray

// Persistent x-ray cache. A warm `modelcache pull` needs the runtime facts for
// its resolution key, and a full Probe costs hundreds of milliseconds (python3
// start-up, library scans). The cache keeps recent x-rays in one JSON file
// (the CLI uses H/.meta/xray.json) and serves one again only while every
// input that could change a fact is unchanged. Checking that costs a few
// dozen stat calls and two or three small /proc reads, never a process.
//
// Each entry is filed under a key, the probing context: the Options that
// steer Probe, the environment variables Probe and its tools read, the
// modelcache version and the host's boot id. Processes that share a cache
// directory but differ in context (one worker per GPU with its own
// CUDA_VISIBLE_DEVICES, several hosts on one network file system) each keep
// their own entry instead of overwriting each other's. An entry is valid while
// its validator, a hash of the host state, still matches: identities (mode,
// size, mtime_ns, ctime_ns, device, inode) of the files and directories the
// probes read, plus the contents of the /proc files (procfs times are not
// change times). The directories a probe scanned (sys.path, library
// directories, the Python packages found) are recorded in the entry, so the
// next check stats the same ones. After MaxAge an entry is re-probed anyway.
//
// Known limits: a .pth file edited in place (not replaced) in a sys.path
// directory is not noticed until MaxAge; a Runner or FS injected through
// Options is not part of the key (use one cache file per injected runner).

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/layout"
	"github.com/modelcache/modelcache/internal/negotiation"
	"github.com/modelcache/modelcache/internal/version"
)

const (
	// CacheFormat is the layout version of the cache file. A file with a
	// greater format (written by a newer modelcache) is neither used nor
	// replaced; an older one is replaced.
	CacheFormat = 1
	// ProbeVersion identifies Probe's logic. Bump it with every change that
	// can alter the facts, sources or warnings reported for the same host,
	// so that x-rays cached by an older binary are not served.
	ProbeVersion = 1
	// DefaultCacheMaxAge bounds how long a cached x-ray is served even when
	// none of its inputs changed.
	DefaultCacheMaxAge = 24 * time.Hour

	// maxCacheEntries bounds the file (an entry is a few KiB); the entries
	// probed longest ago are dropped first.
	maxCacheEntries = 16
	// maxCacheFile bounds what is read from the cache file.
	maxCacheFile = 1 << 20
	// racyWindow: an input whose mtime or ctime is this recent when the
	// probe ends may have changed during the probe without its time
	// changing again (coarse timestamps), so the x-ray is not stored.
	racyWindow = 2 * time.Second
	// cacheClockSkew tolerates an entry stamped slightly in the future.
	cacheClockSkew = time.Minute
	// maxProcRead bounds the /proc files read for the fingerprint.
	maxProcRead = 64 << 10
)

// cacheProbeEnv are the variables Probe itself reads (through
// Options.Getenv).
var cacheProbeEnv = []string{"CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER", "VIRTUAL_ENV"}

// cacheCommandEnv are the variables that change what the tools Probe runs
// (python3, dpkg, ldconfig, nvidia-smi) find, or select the Python
// environment.
var cacheCommandEnv = []string{
	"PATH", "PYTHONPATH", "PYTHONHOME", "PYTHONNOUSERSITE", "PYTHONUSERBASE", "PYTHONPLATLIBDIR",
	"PYTHONSAFEPATH", "HOME", "LD_LIBRARY_PATH", "CONDA_PREFIX", "CONDA_DEFAULT_ENV", "CUDA_HOME",
	"CUDA_PATH", "NVIDIA_VISIBLE_DEVICES", "PYENV_VERSION", "PYENV_ROOT", "PYENV_DIR", "COLUMNS",
}

// cacheHostFiles are stat'ed for every entry: what osVersion, l4tVersion,
// dpkgPackages and libraryDirs read (dpkg -l and ldconfig -p read the last two).
var cacheHostFiles = []string{"/etc/os-release", "/etc/nv_tegra_release", "/var/lib/dpkg/status", "/etc/ld.so.cache"}

// cacheProcFiles are read for every entry: kernel-provided facts.
var cacheProcFiles = []string{"/proc/driver/nvidia/version", "/proc/device-tree/model", "/proc/sys/kernel/osrelease"}

// fallbackToolDirs are searched after PATH, as ExecRunner does.
var fallbackToolDirs = []string{"/usr/sbin", "/sbin", "/usr/bin"}

// Cache is a persistent x-ray cache file.
type Cache struct {
	// Path of the cache file; its directory is created (one level) when
	// missing. A symlink at Path or at its directory is refused.
	Path string
	// MaxAge after which an entry is re-probed; 0 is DefaultCacheMaxAge.
	MaxAge time.Duration
}

// CachedProbe is Cache{Path: path}.Probe(ctx, o, now).
func CachedProbe(ctx context.Context, o Options, path string, now time.Time) (Runtime, bool, error) {
	return Cache{Path: path}.Probe(ctx, o, now)
}

// Probe returns the x-ray cached for o's context when none of its inputs
// changed and it is younger than MaxAge (fromCache true; no command runs).
// Otherwise it runs Probe and stores the result, unless Probe failed, a
// command timed out or ctx ended, or an input changed while probing. The
// cache never causes an error: an unreadable, corrupt or symlinked file is a
// miss, and a file that cannot be written leaves the fresh x-ray returned
// (logged at debug level, a symlink at warn level). The error is Probe's.
// Warnings of a cached x-ray are logged again, as Probe logs them.
func (c Cache) Probe(ctx context.Context, o Options, now time.Time) (Runtime, bool, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if c.Path == "" {
		rt, err := Probe(ctx, o)
		return rt, false, err
	}
	maxAge := c.MaxAge
	if maxAge <= 0 {
		maxAge = DefaultCacheMaxAge
	}
	o = cacheDefaults(o)
	fp := newFingerprinter(o)
	key := fp.key()

	reason := "no cache file"
	file, err := readCacheFile(c.Path)
	switch {
	case err == nil && file.Format != CacheFormat:
		reason = fmt.Sprintf("cache file format %d, this binary reads %d", file.Format, CacheFormat)
	case err == nil:
		reason = "no entry for this context"
		if e := file.entry(key); e != nil {
			rt, why := e.serve(fp, now, maxAge)
			if why == "" {
				log.DebugContext(ctx, "x-ray from cache", "path", c.Path, "age", now.Sub(e.ProbedAt).Round(time.Millisecond))
				for _, w := range rt.Warnings {
					log.Warn(w)
				}
				return rt, true, nil
			}
			reason = why
		}
	case errors.Is(err, fsx.ErrSymlink):
		reason = "symlink refused: " + err.Error()
	case !errors.Is(err, fs.ErrNotExist):
		reason = err.Error()
	}
	log.DebugContext(ctx, "x-ray cache miss", "path", c.Path, "reason", reason)

	rec := &commandRecorder{run: o.Run, timeout: o.CommandTimeout, outputs: map[string]recordedOutput{}}
	po := o
	po.Run = rec.runner
	rt, perr := Probe(ctx, po)
	if perr != nil {
		return rt, false, perr
	}
	if ctx.Err() != nil || rec.isTransient() {
		log.DebugContext(ctx, "x-ray not cached: a command timed out or the context ended", "path", c.Path)
		return rt, false, nil
	}
	e := cacheEntry{Key: key, ProbedAt: now, Watch: watchedPaths(ctx, o, rec, fp.commandEnv), Facts: rt.Facts,
		Sources: rt.Sources, Warnings: rt.Warnings}
	var newest time.Time
	e.Validator, newest = fp.validator(e.Watch)
	if !newest.Before(now.Add(-racyWindow)) {
		log.DebugContext(ctx, "x-ray not cached: an input changed moments ago", "path", c.Path, "mtime", newest)
		return rt, false, nil
	}
	if err := c.store(e, now, maxAge); err != nil {
		if errors.Is(err, fsx.ErrSymlink) {
			log.Warn("x-ray cache not written", "path", c.Path, "error", err.Error())
		} else {
			log.DebugContext(ctx, "x-ray cache not written", "path", c.Path, "error", err.Error())
		}
	}
	return rt, false, nil
}

// cacheDefaults applies Probe's defaults that the fingerprint depends on.
func cacheDefaults(o Options) Options {
	if o.FS == nil {
		o.FS = os.DirFS("/")
	}
	if o.Machine == "" {
		o.Machine = machine(runtime.GOARCH)
	}
	if o.CommandTimeout <= 0 {
		o.CommandTimeout = DefaultCommandTimeout
	}
	return o
}

// cacheFile is the JSON document at Cache.Path.
type cacheFile struct {
	Format  int          `json:"format"`
	Entries []cacheEntry `json:"entries"`
}

// cacheEntry is one cached x-ray.
type cacheEntry struct {
	Key       string              `json:"key"`       // sha256 of the probing context
	Validator string              `json:"validator"` // sha256 of the host state
	ProbedAt  time.Time           `json:"probed_at"`
	Watch     cacheWatch          `json:"watch"`
	Facts     negotiation.Runtime `json:"facts"`
	Sources   map[string]string   `json:"sources"`
	Warnings  []string            `json:"warnings,omitempty"`
}

// cacheWatch are the paths, beyond the fixed ones, whose identity the
// validator covers: what the probe scanned on that run.
type cacheWatch struct {
	// PythonPaths: the import directories (python3's sys.path or the
	// fallback site-packages dirs) and the user site-packages directory
	// Python would add once it exists.
	PythonPaths []string `json:"python_paths"`
	// PythonPackages: directory, __init__.py and version file of each
	// package found (and onnxruntime's capi directory).
	PythonPackages []string `json:"python_packages"`
	// LibraryDirs: ldconfig's directories and the standard ones.
	LibraryDirs []string `json:"library_dirs"`
}

func (f *cacheFile) entry(key string) *cacheEntry {
	for i := range f.Entries {
		if f.Entries[i].Key == key {
			return &f.Entries[i]
		}
	}
	return nil
}

// serve returns the entry's x-ray, or why it cannot be served.
func (e *cacheEntry) serve(fp *fingerprinter, now time.Time, maxAge time.Duration) (Runtime, string) {
	switch {
	case e.ProbedAt.IsZero() || e.ProbedAt.After(now.Add(cacheClockSkew)):
		return Runtime{}, "entry time in the future"
	case now.Sub(e.ProbedAt) > maxAge:
		return Runtime{}, "entry expired"
	case e.Sources == nil || e.Facts.Check() != nil:
		return Runtime{}, "entry invalid"
	}
	if v, _ := fp.validator(e.Watch); v != e.Validator {
		return Runtime{}, "host changed"
	}
	rt := Runtime{Facts: e.Facts, Sources: e.Sources, Warnings: e.Warnings}
	if len(rt.Warnings) == 0 {
		rt.Warnings = nil
	}
	return rt, ""
}

// readCacheFile reads and decodes the cache file without following a symlink
// at its last component or at its directory.
func readCacheFile(p string) (*cacheFile, error) {
	if err := checkCacheDir(filepath.Dir(p)); err != nil {
		return nil, err
	}
	b, err := fsx.ReadFileNoFollow(p, maxCacheFile)
	if err != nil {
		return nil, err
	}
	var file cacheFile
	if err := json.Unmarshal(b, &file); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return &file, nil
}

// checkCacheDir refuses a directory that is a symlink or not a directory.
func checkCacheDir(dir string) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return &fsx.UnsafePathError{Op: "use directory", Path: dir, Kind: fsx.ErrSymlink}
	case !fi.IsDir():
		return &fsx.UnsafePathError{Op: "use directory", Path: dir, Kind: fsx.ErrNotDir}
	}
	return nil
}

// store merges e into the file as it is now (entries of other contexts are
// kept; expired ones and the oldest beyond maxCacheEntries are dropped) and
// writes it atomically, mode 0644.
func (c Cache) store(e cacheEntry, now time.Time, maxAge time.Duration) error {
	dir := filepath.Dir(c.Path)
	if err := checkCacheDir(dir); errors.Is(err, fs.ErrNotExist) {
		// One level only: a missing cache root is not created here.
		if err := os.Mkdir(dir, 0o777); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
	} else if err != nil {
		return err
	}
	out := cacheFile{Format: CacheFormat, Entries: []cacheEntry{e}}
	cur, err := readCacheFile(c.Path)
	switch {
	case err == nil && cur.Format > CacheFormat:
		return fmt.Errorf("%s has format %d, newer than %d: left as is", c.Path, cur.Format, CacheFormat)
	case err == nil && cur.Format == CacheFormat:
		for _, old := range cur.Entries {
			if old.Key == e.Key || old.ProbedAt.After(now.Add(cacheClockSkew)) || now.Sub(old.ProbedAt) > maxAge {
				continue
			}
			out.Entries = append(out.Entries, old)
		}
	case errors.Is(err, fsx.ErrSymlink) || errors.Is(err, fsx.ErrNotRegular) || errors.Is(err, fsx.ErrNotDir):
		return err
	}
	sort.SliceStable(out.Entries[1:], func(i, j int) bool {
		return out.Entries[1+i].ProbedAt.After(out.Entries[1+j].ProbedAt)
	})
	if len(out.Entries) > maxCacheEntries {
		out.Entries = out.Entries[:maxCacheEntries]
	}
	data, err := json.Marshal(out)
	if err != nil {
		return err
	}
	return fsx.WriteFileAtomic(c.Path, append(data, '\n'), 0o644)
}

// commandRecorder wraps the runner Probe uses, keeping the outputs that tell
// which directories were scanned (sys.path, ldconfig -p) and whether a
// command failed for a reason that may not last (timeout, cancellation).
type commandRecorder struct {
	run     Runner // nil: ExecRunner(timeout)
	timeout time.Duration

	mu        sync.Mutex
	outputs   map[string]recordedOutput
	transient bool
}

type recordedOutput struct {
	out []byte
	err error
}

func commandKey(name string, args []string) string {
	return name + "\x00" + strings.Join(args, "\x00")
}

func (r *commandRecorder) runner(ctx context.Context, name string, args ...string) ([]byte, error) {
	run := r.run
	if run == nil {
		run = ExecRunner(r.timeout)
	}
	start := time.Now()
	out, err := run(ctx, name, args...)
	elapsed := time.Since(start)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.outputs[commandKey(name, args)] = recordedOutput{out: slices.Clone(out), err: err}
	if err != nil && (ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, context.Canceled) || elapsed >= r.timeout*9/10) {
		r.transient = true
	}
	return out, err
}

func (r *commandRecorder) isTransient() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.transient
}

// replay answers as the recorded run did; other commands are not installed.
func (r *commandRecorder) replay(_ context.Context, name string, args ...string) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if o, ok := r.outputs[commandKey(name, args)]; ok {
		return o.out, o.err
	}
	return nil, fmt.Errorf("%s: not run by the recorded probe: %w", name, fs.ErrNotExist)
}

// watchedPaths re-derives, with the probe's own code on the recorded command
// outputs, the directories and files the probe scanned.
func watchedPaths(ctx context.Context, o Options, rec *commandRecorder, commandEnv func(string) (string, bool)) cacheWatch {
	o.Run = rec.replay
	o.Logger = nil
	p := &prober{o: o, out: &Runtime{Sources: map[string]string{}}, log: slog.New(slog.DiscardHandler)}
	w := cacheWatch{PythonPaths: []string{}, PythonPackages: []string{}, LibraryDirs: []string{}}
	dirs, src := p.pythonPaths(ctx)
	w.PythonPaths = append(w.PythonPaths, dirs...)
	if src == "python3 sys.path" {
		w.PythonPaths = append(w.PythonPaths, userSitePaths(dirs, commandEnv)...)
	}
	pkgs := p.python(ctx)
	for mod, m := range pkgs {
		w.PythonPackages = append(w.PythonPackages, m.dir, path.Join(m.dir, "__init__.py"), path.Join(m.dir, versionFiles[mod]))
		if mod == "onnxruntime" {
			w.PythonPackages = append(w.PythonPackages, path.Join(m.dir, "capi"))
		}
	}
	for _, d := range p.libraryDirs(ctx) {
		w.LibraryDirs = append(w.LibraryDirs, "/"+d)
	}
	w.PythonPaths = dedupe(w.PythonPaths)
	slices.Sort(w.PythonPackages)
	w.PythonPackages = dedupe(w.PythonPackages)
	return w
}

// userSitePaths are the user site-packages directories python3 would add to
// sys.path once they exist (<user base>/lib/python3.X/site-packages for each
// python3.X of sys.path), so that creating one is noticed.
func userSitePaths(sysPath []string, getenv func(string) (string, bool)) []string {
	base, ok := getenv("PYTHONUSERBASE")
	if !ok || base == "" {
		home, ok := getenv("HOME")
		if !ok || !strings.HasPrefix(home, "/") {
			return nil
		}
		base = path.Join(home, ".local")
	}
	var out []string
	for _, d := range sysPath {
		for _, el := range strings.Split(d, "/") {
			if v, ok := strings.CutPrefix(el, "python3."); ok && v != "" && strings.Trim(v, "0123456789") == "" {
				out = append(out, path.Join(base, "lib", el, "site-packages"))
			}
		}
	}
	return out
}

func dedupe(s []string) []string {
	seen := make(map[string]bool, len(s))
	out := s[:0]
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// fingerprinter computes an entry's key and validator for one call.
type fingerprinter struct {
	o          Options // with cacheDefaults applied
	probeEnv   func(string) (string, bool)
	commandEnv func(string) (string, bool)
	python3    string // python3 found on PATH ("" if none), set by key()
	nvidiaSMI  string // nvidia-smi found on PATH ("" if none), set by key()
}

func newFingerprinter(o Options) *fingerprinter {
	probeEnv := o.Getenv
	if probeEnv == nil {
		probeEnv = os.LookupEnv
	}
	// ExecRunner runs the tools with this process's environment; an
	// injected runner is assumed to follow Options.Getenv.
	commandEnv := probeEnv
	if o.Run == nil {
		commandEnv = os.LookupEnv
	}
	return &fingerprinter{o: o, probeEnv: probeEnv, commandEnv: commandEnv}
}

// binaryVersion identifies the running modelcache build.
var binaryVersion = sync.OnceValue(func() string {
	i := version.Get()
	return fmt.Sprintf("%s %s %s %t", i.Module, i.Version, i.Commit, i.Modified)
})

// key hashes the probing context: cache and probe versions, the Options
// that steer Probe, the environment, the boot (host) and the GPU devices
// this process sees.
func (f *fingerprinter) key() string {
	var h fpBuf
	o := f.o
	h.str("xray-cache-key")
	h.num(CacheFormat)
	h.num(ProbeVersion)
	h.str(binaryVersion())
	h.str(o.RunningOnJetson)
	h.str(o.JetsonModule)
	h.str(o.L4TVersion)
	h.str(o.Machine)
	h.num(int64(o.CommandTimeout))
	h.flag(o.Run == nil)
	h.flag(o.Getenv == nil)
	h.str(fmt.Sprintf("%T", o.FS))
	h.str(fmt.Sprintf("%T", o.CUDA))
	h.flag(o.PythonPaths == nil)
	h.strs(o.PythonPaths)
	d := o.Declared
	h.optStr(d.ONNXRuntimeVersion)
	h.flag(d.ONNXExecutionProviders == nil)
	h.strs(d.ONNXExecutionProviders)
	h.optBool(d.TorchAvailable)
	h.optStr(d.TorchVersion)
	h.optStr(d.TorchvisionVersion)
	h.optBool(d.HFTransformers)
	h.optBool(d.TRTPythonPackage)
	for _, name := range cacheProbeEnv {
		h.env(name, f.probeEnv)
	}
	for _, name := range cacheCommandEnv {
		h.env(name, f.commandEnv)
	}
	h.content(o.FS, "/proc/sys/kernel/random/boot_id")
	h.names(o.FS, "/dev", "nvidia")
	// python3 and nvidia-smi as the runner would find them: a new one
	// earlier on PATH changes the key (their identities are validated).
	pathEnv, _ := f.commandEnv("PATH")
	f.python3 = lookTool(o.FS, pathEnv, "python3")
	f.nvidiaSMI = lookTool(o.FS, pathEnv, "nvidia-smi")
	h.str(f.python3)
	h.str(f.nvidiaSMI)
	if strings.Contains(f.python3, "/shims/") {
		// A version manager's shim (pyenv, asdf) picks the interpreter
		// from the working directory.
		wd, _ := os.Getwd()
		h.str(wd)
	}
	return h.sum()
}

// validator hashes the host state the probes read, with the newest mtime or
// ctime seen among the stat'ed paths.
func (f *fingerprinter) validator(w cacheWatch) (string, time.Time) {
	var h fpBuf
	fsys := f.o.FS
	h.str("xray-cache-validator")
	for _, p := range cacheProcFiles {
		h.content(fsys, p)
	}
	h.names(fsys, "/proc/driver/nvidia/gpus", "")
	for _, p := range cacheHostFiles {
		h.stat(fsys, p)
	}
	if f.python3 != "" {
		h.stat(fsys, f.python3)
		// A virtual environment's sys.path depends on its pyvenv.cfg.
		bin := path.Dir(f.python3)
		h.stat(fsys, path.Join(bin, "pyvenv.cfg"))
		h.stat(fsys, path.Join(path.Dir(bin), "pyvenv.cfg"))
	}
	if f.nvidiaSMI != "" {
		h.stat(fsys, f.nvidiaSMI)
	}
	for _, list := range [][]string{w.PythonPaths, w.PythonPackages, w.LibraryDirs} {
		h.num(int64(len(list)))
		for _, p := range list {
			h.stat(fsys, p)
		}
	}
	return h.sum(), h.newest
}

// fpBuf accumulates length-prefixed fingerprint fields.
type fpBuf struct {
	b      []byte
	newest time.Time
}

func (h *fpBuf) str(s string) {
	h.b = binary.AppendUvarint(h.b, uint64(len(s)))
	h.b = append(h.b, s...)
}

func (h *fpBuf) num(n int64) { h.b = binary.AppendVarint(h.b, n) }

func (h *fpBuf) flag(b bool) {
	if b {
		h.b = append(h.b, 1)
	} else {
		h.b = append(h.b, 0)
	}
}

func (h *fpBuf) strs(s []string) {
	h.num(int64(len(s)))
	for _, v := range s {
		h.str(v)
	}
}

func (h *fpBuf) optStr(s *string) {
	h.flag(s != nil)
	if s != nil {
		h.str(*s)
	}
}

func (h *fpBuf) optBool(b *bool) {
	h.flag(b != nil)
	if b != nil {
		h.flag(*b)
	}
}

func (h *fpBuf) env(name string, getenv func(string) (string, bool)) {
	v, ok := getenv(name)
	h.str(name)
	h.flag(ok)
	h.str(v)
}

func (h *fpBuf) sum() string {
	s := sha256.Sum256(h.b)
	return hex.EncodeToString(s[:])
}

// fsName turns an absolute path into a name of the root file system.
func fsName(p string) string {
	n := strings.TrimPrefix(path.Clean("/"+p), "/")
	if n == "" {
		return "."
	}
	return n
}

// errState classifies a failed stat or read.
func errState(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "absent"
	case errors.Is(err, fs.ErrPermission):
		return "denied"
	}
	return "error"
}

// stat adds p's identity (following symlinks): mode, size, mtime, ctime,
// device and inode, or why it has none.
func (h *fpBuf) stat(fsys fs.FS, p string) {
	h.str(p)
	fi, err := fs.Stat(fsys, fsName(p))
	if err != nil {
		h.str(errState(err))
		return
	}
	h.str("")
	mt := fi.ModTime()
	h.num(int64(fi.Mode()))
	h.num(fi.Size())
	h.num(mt.Unix())
	h.num(int64(mt.Nanosecond()))
	id, _ := fsx.FileIDOf(fi) // zero for an fs.FS without stat_t (tests)
	h.num(int64(id.Dev))
	h.num(int64(id.Ino))
	h.num(id.CtimeNS)
	if mt.After(h.newest) {
		h.newest = mt
	}
	if id.CtimeNS != 0 {
		if ct := time.Unix(0, id.CtimeNS); ct.After(h.newest) {
			h.newest = ct
		}
	}
}

// content adds the first maxProcRead bytes of a (small, kernel-provided) file.
func (h *fpBuf) content(fsys fs.FS, p string) {
	h.str(p)
	f, err := fsys.Open(fsName(p))
	if err != nil {
		h.str(errState(err))
		return
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxProcRead))
	if err != nil {
		h.str(errState(err))
		return
	}
	h.str("")
	h.str(string(b))
}

// names adds the sorted names in dir that start with prefix.
func (h *fpBuf) names(fsys fs.FS, dir, prefix string) {
	h.str(dir)
	entries, err := fs.ReadDir(fsys, fsName(dir))
	if err != nil {
		h.str(errState(err))
		return
	}
	h.str("")
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			h.str(e.Name())
		}
	}
}

// lookTool returns where ExecRunner would find name: the first executable
// regular file in PATH's absolute directories, then in fallbackToolDirs.
func lookTool(fsys fs.FS, pathEnv, name string) string {
	for _, d := range append(filepath.SplitList(pathEnv), fallbackToolDirs...) {
		if !strings.HasPrefix(d, "/") {
			continue // exec.LookPath refuses relative results
		}
		p := path.Join(d, name)
		if fi, err := fs.Stat(fsys, fsName(p)); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

// CachePath is where a load keeps the probe of this machine: <H>/.meta/xray.json,
// or "" (no file: probe every time, write nothing) in offline mode or when
// H is unusable.
func CachePath(cfg config.Config) string {
	if cfg.Offline {
		return ""
	}
	home, err := layout.NewHome(cfg.Home)
	if err != nil {
		return ""
	}
	return filepath.Join(home.Meta(), "xray.json")
}
