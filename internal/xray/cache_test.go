package xray

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"
)

// cacheFixture is a recorded host (loadHost) with a mutable environment,
// a cache file in a temporary directory and a settable clock.
type cacheFixture struct {
	t     *testing.T
	o     Options
	calls *[]string
	fs    fstest.MapFS
	env   map[string]string
	path  string
	now   time.Time
}

var cacheEpoch = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func newCacheFixture(t *testing.T, host string) *cacheFixture {
	t.Helper()
	h, o, calls := loadHost(t, host)
	f := &cacheFixture{t: t, o: o, calls: calls, fs: o.FS.(fstest.MapFS), env: maps.Clone(h.Env), now: cacheEpoch}
	if f.env == nil {
		f.env = map[string]string{}
	}
	f.o.Getenv = func(k string) (string, bool) { v, ok := f.env[k]; return v, ok }
	// .meta does not exist yet: the first store creates it.
	f.path = filepath.Join(t.TempDir(), ".meta", "xray.json")
	return f
}

// dir gives a directory of the fixture an explicit entry (MapFS synthesizes
// parents with no time), so that tests can touch it.
func (f *cacheFixture) dir(name string, mtime time.Time) {
	f.fs[strings.TrimPrefix(name, "/")] = &fstest.MapFile{Mode: fs.ModeDir | 0o755, ModTime: mtime}
}

func (f *cacheFixture) file(name, data string, mode fs.FileMode, mtime time.Time) {
	f.fs[strings.TrimPrefix(name, "/")] = &fstest.MapFile{Data: []byte(data), Mode: mode, ModTime: mtime}
}

func (f *cacheFixture) probe() (Runtime, bool) {
	f.t.Helper()
	rt, hit, err := CachedProbe(context.Background(), f.o, f.path, f.now)
	if err != nil {
		f.t.Fatalf("CachedProbe: %v", err)
	}
	return rt, hit
}

// expect calls CachedProbe and checks whether it was served from the cache,
// and that commands ran exactly when it was not.
func (f *cacheFixture) expect(wantHit bool, what string) Runtime {
	f.t.Helper()
	before := len(*f.calls)
	rt, hit := f.probe()
	ran := len(*f.calls) - before
	switch {
	case hit != wantHit:
		f.t.Fatalf("%s: from cache = %v, want %v", what, hit, wantHit)
	case hit && ran != 0:
		f.t.Fatalf("%s: served from cache but ran %d commands: %q", what, ran, (*f.calls)[before:])
	case !hit && ran == 0:
		f.t.Fatalf("%s: re-probed without running a command", what)
	}
	return rt
}

func (f *cacheFixture) readFile() []byte {
	f.t.Helper()
	b, err := os.ReadFile(f.path)
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

func (f *cacheFixture) editFile(edit func(doc map[string]any)) {
	f.t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(f.readFile(), &doc); err != nil {
		f.t.Fatal(err)
	}
	edit(doc)
	b, err := json.Marshal(doc)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(f.path, b, 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func runtimeJSON(t *testing.T, rt Runtime) string {
	t.Helper()
	b, err := json.Marshal(rt)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestCachedProbeSecondCallFromCache: on every recorded host the first call
// probes and stores, the second is served from the file without running any
// command, and both equal a plain Probe.
func TestCachedProbeSecondCallFromCache(t *testing.T) {
	for _, host := range []string{"t4", "l4", "a100", "h100", "jetson-orin-nx", "cpu-only"} {
		t.Run(host, func(t *testing.T) {
			f := newCacheFixture(t, host)
			want, err := Probe(context.Background(), f.o)
			if err != nil {
				t.Fatal(err)
			}
			fresh := f.expect(false, "first call")
			if !reflect.DeepEqual(fresh, want) {
				t.Fatalf("first call\n got %s\nwant %s", runtimeJSON(t, fresh), runtimeJSON(t, want))
			}
			fi, err := os.Lstat(f.path)
			if err != nil {
				t.Fatalf("no cache file: %v", err)
			}
			if fi.Mode() != 0o644 {
				t.Fatalf("cache file mode %v, want 0644", fi.Mode())
			}
			for i := 0; i < 3; i++ {
				f.now = f.now.Add(time.Hour)
				cached := f.expect(true, "second call")
				if !reflect.DeepEqual(cached, want) {
					t.Fatalf("cached\n got %s\nwant %s", runtimeJSON(t, cached), runtimeJSON(t, want))
				}
			}
		})
	}
}

// TestCachedProbeRecordsScannedPaths: the entry lists the directories the
// probe scanned, re-derived from the recorded sys.path and ldconfig output.
func TestCachedProbeRecordsScannedPaths(t *testing.T) {
	f := newCacheFixture(t, "l4")
	f.env["HOME"] = "/root"
	f.probe()
	var file cacheFile
	if err := json.Unmarshal(f.readFile(), &file); err != nil {
		t.Fatal(err)
	}
	if file.Format != CacheFormat || len(file.Entries) != 1 {
		t.Fatalf("file %+v", file)
	}
	w := file.Entries[0].Watch
	for _, c := range []struct {
		list []string
		want string
	}{
		{w.PythonPaths, "/usr/local/lib/python3.10/dist-packages"},
		{w.PythonPaths, "/usr/lib/python3/dist-packages"},
		{w.PythonPaths, "/root/.local/lib/python3.10/site-packages"}, // user site, absent for now
		{w.PythonPackages, "/usr/local/lib/python3.10/dist-packages/torch/version.py"},
		{w.PythonPackages, "/usr/local/lib/python3.10/dist-packages/tensorrt/__init__.py"},
		{w.LibraryDirs, "/usr/local/cuda-12.6/targets/x86_64-linux/lib"}, // from ldconfig -p
		{w.LibraryDirs, "/usr/local/lib"},
		{w.LibraryDirs, "/usr/lib64"}, // standard
	} {
		found := false
		for _, p := range c.list {
			found = found || p == c.want
		}
		if !found {
			t.Errorf("%s not watched: %q", c.want, c.list)
		}
	}
}

// TestCachedProbeInvalidation: each fingerprint input, changed after an
// entry was stored, forces a re-probe whose result reflects the change; the
// next call is served from the cache again.
func TestCachedProbeInvalidation(t *testing.T) {
	old := cacheEpoch.Add(-24 * time.Hour)
	later := cacheEpoch.Add(time.Minute)
	str := func(s string) *string { return &s }
	cases := []struct {
		name   string
		change func(f *cacheFixture)
		check  func(t *testing.T, rt Runtime)
	}{
		// Python packages.
		{"site-packages dir touched", func(f *cacheFixture) { f.dir("/usr/local/lib/python3.10/dist-packages", later) }, nil},
		{"package installed", func(f *cacheFixture) {
			f.file("/usr/local/lib/python3.10/dist-packages/transformers/__init__.py", "", 0o644, later)
			f.dir("/usr/local/lib/python3.10/dist-packages", later)
		}, func(t *testing.T, rt Runtime) {
			if !rt.Facts.HFTransformersAvailable {
				t.Error("transformers not seen")
			}
		}},
		{"torch version file rewritten in place", func(f *cacheFixture) {
			f.file("/usr/local/lib/python3.10/dist-packages/torch/version.py", "__version__ = '2.7.1+cu126'\n", 0o644, later)
		}, func(t *testing.T, rt Runtime) {
			if v := rt.Facts.TorchVersion; v == nil || *v != "2.7.1" {
				t.Errorf("torch %v", v)
			}
		}},
		{"other sys.path dir touched", func(f *cacheFixture) { f.dir("/usr/lib/python3/dist-packages", later) }, nil},
		{"user site-packages created", func(f *cacheFixture) {
			f.file("/root/.local/lib/python3.10/site-packages/transformers/__init__.py", "", 0o644, later)
		}, nil},
		{"python3 executable replaced", func(f *cacheFixture) { f.file("/usr/bin/python3", "python 3.10.15", 0o755, later) }, nil},
		{"python3 installed earlier on PATH", func(f *cacheFixture) { f.file("/usr/local/bin/python3", "python", 0o755, later) }, nil},
		{"pyvenv.cfg created", func(f *cacheFixture) { f.file("/usr/pyvenv.cfg", "home = /usr/bin\n", 0o644, later) }, nil},
		// Libraries and packages of the system.
		{"library dir touched", func(f *cacheFixture) { f.dir("/usr/local/lib", later) }, nil},
		{"standard library dir created", func(f *cacheFixture) {
			f.file("/usr/local/cuda/lib64/libnvinfer.so.10.8.0", "", 0o644, later)
		}, func(t *testing.T, rt Runtime) {
			if v := rt.Facts.TRTVersion; v == nil || *v != "10.9.0.34" { // the Python package still wins
				t.Errorf("trt %v", v)
			}
		}},
		{"dpkg status changed", func(f *cacheFixture) { f.file("/var/lib/dpkg/status", "Package: x\n", 0o644, later) }, nil},
		{"ld.so.cache rebuilt", func(f *cacheFixture) { f.file("/etc/ld.so.cache", "cache", 0o644, later) }, nil},
		{"os-release replaced", func(f *cacheFixture) {
			b, err := os.ReadFile("testdata/os-release-ubuntu-24.04")
			if err != nil {
				f.t.Fatal(err)
			}
			f.file("/etc/os-release", string(b), 0o644, later)
		}, func(t *testing.T, rt Runtime) {
			if v := rt.Facts.OSVersion; v == nil || *v != "ubuntu-24.04" {
				t.Errorf("os %v", v)
			}
		}},
		{"nv_tegra_release created", func(f *cacheFixture) {
			f.file("/etc/nv_tegra_release", "# R36 (release), REVISION: 4.3\n", 0o644, later)
		}, nil},
		// Kernel and driver.
		{"driver upgraded", func(f *cacheFixture) {
			f.file("/proc/driver/nvidia/version", "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  560.35.03  Release Build\n", 0o444, time.Time{})
		}, func(t *testing.T, rt Runtime) {
			if v := rt.Facts.DriverVersion; v == nil || *v != "560.35.3" {
				t.Errorf("driver %v", v)
			}
		}},
		{"GPU list in /proc changed", func(f *cacheFixture) {
			f.file("/proc/driver/nvidia/gpus/0000:01:00.0/information", "Model: NVIDIA L4\n", 0o444, time.Time{})
		}, nil},
		{"device tree model appeared", func(f *cacheFixture) {
			f.file("/proc/device-tree/model", "Some Board\x00", 0o444, time.Time{})
		}, nil},
		{"kernel changed", func(f *cacheFixture) { f.file("/proc/sys/kernel/osrelease", "6.9.0\n", 0o444, time.Time{}) }, nil},
		{"rebooted", func(f *cacheFixture) {
			f.file("/proc/sys/kernel/random/boot_id", "7d1f6b1e-0000-4000-8000-000000000001\n", 0o444, time.Time{})
		}, nil},
		{"GPU device nodes changed", func(f *cacheFixture) { f.file("/dev/nvidia1", "", fs.ModeDevice|fs.ModeCharDevice|0o666, old) }, nil},
		{"nvidia-smi installed on PATH", func(f *cacheFixture) { f.file("/usr/local/bin/nvidia-smi", "", 0o755, later) }, nil},
		// Environment.
		{"CUDA_VISIBLE_DEVICES set", func(f *cacheFixture) { f.env["CUDA_VISIBLE_DEVICES"] = "" }, func(t *testing.T, rt Runtime) {
			if len(rt.Facts.GPUDevices) != 0 {
				t.Errorf("GPUs %v", rt.Facts.GPUDevices)
			}
		}},
		{"CUDA_DEVICE_ORDER set", func(f *cacheFixture) { f.env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID" }, nil},
		{"VIRTUAL_ENV set", func(f *cacheFixture) { f.env["VIRTUAL_ENV"] = "/opt/venv" }, nil},
		{"PATH changed", func(f *cacheFixture) { f.env["PATH"] = "/opt/conda/bin:" + f.env["PATH"] }, nil},
		{"PYTHONPATH set", func(f *cacheFixture) { f.env["PYTHONPATH"] = "/srv/lib" }, nil},
		{"LD_LIBRARY_PATH set", func(f *cacheFixture) { f.env["LD_LIBRARY_PATH"] = "/opt/lib" }, nil},
		{"CONDA_PREFIX set", func(f *cacheFixture) { f.env["CONDA_PREFIX"] = "/opt/conda" }, nil},
		{"HOME changed", func(f *cacheFixture) { f.env["HOME"] = "/home/other" }, nil},
		// Options.
		{"RUNNING_ON_JETSON set", func(f *cacheFixture) { f.o.RunningOnJetson = "false" }, func(t *testing.T, rt Runtime) {
			if !strings.Contains(rt.Sources["jetson_type"], "RUNNING_ON_JETSON") {
				t.Errorf("source %q", rt.Sources["jetson_type"])
			}
		}},
		{"L4T_VERSION set", func(f *cacheFixture) { f.o.L4TVersion = "36.4.3" }, nil},
		{"declared torch version", func(f *cacheFixture) { f.o.Declared.TorchVersion = str("2.8.0") }, func(t *testing.T, rt Runtime) {
			if v := rt.Facts.TorchVersion; v == nil || *v != "2.8.0" {
				t.Errorf("torch %v", v)
			}
		}},
		{"declared ONNX Runtime", func(f *cacheFixture) {
			f.o.Declared.ONNXRuntimeVersion = str("1.22.1")
			f.o.Declared.ONNXExecutionProviders = []string{"CPUExecutionProvider"}
		}, func(t *testing.T, rt Runtime) {
			if v := rt.Facts.ONNXRuntimeVersion; v == nil || *v != "1.22.1" {
				t.Errorf("onnxruntime %v", v)
			}
		}},
		{"configured Python paths", func(f *cacheFixture) { f.o.PythonPaths = []string{"/usr/lib/python3/dist-packages"} },
			func(t *testing.T, rt Runtime) {
				if rt.Facts.TorchAvailable {
					t.Error("torch still seen")
				}
			}},
		{"machine", func(f *cacheFixture) { f.o.Machine = "aarch64" }, nil},
		{"command timeout", func(f *cacheFixture) { f.o.CommandTimeout = 3 * time.Second }, nil},
		// Age and the file itself.
		{"expired", func(f *cacheFixture) { f.now = f.now.Add(DefaultCacheMaxAge + time.Second) }, nil},
		{"clock went back", func(f *cacheFixture) { f.now = f.now.Add(-time.Hour) }, nil},
		{"file corrupt", func(f *cacheFixture) {
			if err := os.WriteFile(f.path, []byte("\x00garbage{"), 0o644); err != nil {
				f.t.Fatal(err)
			}
		}, nil},
		{"file truncated", func(f *cacheFixture) {
			b := f.readFile()
			if err := os.WriteFile(f.path, b[:len(b)/2], 0o644); err != nil {
				f.t.Fatal(err)
			}
		}, nil},
		{"file empty", func(f *cacheFixture) {
			if err := os.WriteFile(f.path, nil, 0o644); err != nil {
				f.t.Fatal(err)
			}
		}, nil},
		{"file removed", func(f *cacheFixture) {
			if err := os.Remove(f.path); err != nil {
				f.t.Fatal(err)
			}
		}, nil},
		{"older file format", func(f *cacheFixture) { f.editFile(func(doc map[string]any) { doc["format"] = CacheFormat - 1 }) }, nil},
		{"entry facts invalid", func(f *cacheFixture) {
			f.editFile(func(doc map[string]any) {
				e := doc["entries"].([]any)[0].(map[string]any)
				facts := e["facts"].(map[string]any)
				facts["gpu_devices"], facts["l4t_version"] = []string{"orin"}, nil
			})
		}, nil},
		{"entry validator differs", func(f *cacheFixture) {
			f.editFile(func(doc map[string]any) { doc["entries"].([]any)[0].(map[string]any)["validator"] = "0" })
		}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newCacheFixture(t, "l4")
			f.env["PATH"] = "/usr/local/bin:/usr/bin"
			f.env["HOME"] = "/root"
			f.file("/usr/bin/python3", "python 3.10.12", 0o755, old)
			f.dir("/usr/local/lib/python3.10/dist-packages", old)
			f.dir("/usr/lib/python3/dist-packages", old)
			f.dir("/usr/local/lib", old)
			f.expect(false, "first call")
			f.expect(true, "unchanged")
			// Changes are stamped "later"; probing well after that lets the
			// re-probed x-ray be stored (see TestCachedProbeRacyInputNotCached).
			f.now = cacheEpoch.Add(2 * time.Minute)
			c.change(f)
			rt := f.expect(false, "after the change")
			want, err := Probe(context.Background(), f.o)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(rt, want) {
				t.Fatalf("re-probe\n got %s\nwant %s", runtimeJSON(t, rt), runtimeJSON(t, want))
			}
			if c.check != nil {
				c.check(t, rt)
			}
			f.now = f.now.Add(time.Minute)
			if again := f.expect(true, "unchanged after the change"); !reflect.DeepEqual(again, want) {
				t.Fatalf("cached after the change\n got %s\nwant %s", runtimeJSON(t, again), runtimeJSON(t, want))
			}
		})
	}
}

// TestCachedProbeUnrelatedChangesHit: what the probe does not read leaves
// the entry valid, up to its maximum age.
func TestCachedProbeUnrelatedChangesHit(t *testing.T) {
	f := newCacheFixture(t, "l4")
	f.expect(false, "first call")
	f.env["ROBOFLOW_API_KEY"] = "secret"
	f.env["INFERENCE_HOME"] = "/elsewhere"
	f.file("/etc/hosts", "127.0.0.1 localhost\n", 0o644, cacheEpoch)
	f.file("/tmp/scratch", "x", 0o644, cacheEpoch)
	f.file("/usr/local/lib/python3.10/dist-packages/torch/nn/modules/linear.py", "", 0o644, cacheEpoch)
	f.now = f.now.Add(DefaultCacheMaxAge - time.Second)
	f.expect(true, "unrelated changes, just under the maximum age")
	if b := f.readFile(); bytes.Contains(b, []byte("secret")) {
		t.Fatal("the cache file holds an environment value")
	}
}

// TestCachedProbeMaxAge: Cache.MaxAge overrides the default.
func TestCachedProbeMaxAge(t *testing.T) {
	f := newCacheFixture(t, "cpu-only")
	c := Cache{Path: f.path, MaxAge: time.Minute}
	call := func(want bool, what string) {
		before := len(*f.calls)
		_, hit, err := c.Probe(context.Background(), f.o, f.now)
		if err != nil || hit != want || hit != (len(*f.calls) == before) {
			t.Fatalf("%s: hit %v (want %v), err %v, %d commands", what, hit, want, err, len(*f.calls)-before)
		}
	}
	call(false, "first")
	f.now = f.now.Add(time.Minute)
	call(true, "at the maximum age")
	f.now = f.now.Add(time.Second)
	call(false, "past it")
}

// TestCachedProbeNewerFormatLeftAlone: a file written by a newer modelcache
// is not used and not replaced.
func TestCachedProbeNewerFormatLeftAlone(t *testing.T) {
	f := newCacheFixture(t, "l4")
	f.expect(false, "first call")
	f.editFile(func(doc map[string]any) { doc["format"] = CacheFormat + 1 })
	newer := f.readFile()
	for i := 0; i < 2; i++ {
		f.expect(false, "newer format")
		if !bytes.Equal(f.readFile(), newer) {
			t.Fatal("the newer file was replaced")
		}
	}
}

// TestCachedProbeContextsKeepTheirEntries: processes that differ in context
// (here one per GPU, by CUDA_VISIBLE_DEVICES) share the file without
// evicting each other; the file keeps at most maxCacheEntries.
func TestCachedProbeContextsKeepTheirEntries(t *testing.T) {
	f := newCacheFixture(t, "h100")
	for _, v := range []string{"0", "1"} {
		f.env["CUDA_VISIBLE_DEVICES"] = v
		f.expect(false, "first call of CUDA_VISIBLE_DEVICES="+v)
	}
	for i := 0; i < 2; i++ {
		for _, v := range []string{"0", "1"} {
			f.env["CUDA_VISIBLE_DEVICES"] = v
			rt := f.expect(true, "CUDA_VISIBLE_DEVICES="+v)
			if len(rt.Facts.GPUDevices) != 1 {
				t.Fatalf("CUDA_VISIBLE_DEVICES=%s: %v", v, rt.Facts.GPUDevices)
			}
		}
	}
	for i := 0; i < maxCacheEntries+4; i++ {
		f.now = f.now.Add(time.Second)
		f.env["CUDA_VISIBLE_DEVICES"] = fmt.Sprint(i % 8)
		f.env["CUDA_DEVICE_ORDER"] = fmt.Sprint("order-", i)
		f.probe()
	}
	var file cacheFile
	if err := json.Unmarshal(f.readFile(), &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Entries) != maxCacheEntries {
		t.Fatalf("%d entries, want %d", len(file.Entries), maxCacheEntries)
	}
	f.expect(true, "the most recent context")
}

// TestCachedProbeRefusesSymlink: a symlink at the file (or at its directory)
// is neither read nor written through; its target is untouched and the
// fresh x-ray is returned.
func TestCachedProbeRefusesSymlink(t *testing.T) {
	t.Run("file", func(t *testing.T) {
		f := newCacheFixture(t, "l4")
		// A valid cache file elsewhere, made by the same fixture.
		f.expect(false, "prime")
		target := filepath.Join(t.TempDir(), "elsewhere.json")
		if err := os.Rename(f.path, target); err != nil {
			t.Fatal(err)
		}
		content := f.readFileAt(target)
		if err := os.Symlink(target, f.path); err != nil {
			t.Fatal(err)
		}
		want, _ := Probe(context.Background(), f.o)
		for i := 0; i < 2; i++ {
			if rt := f.expect(false, "symlinked file"); !reflect.DeepEqual(rt, want) {
				t.Fatalf("got %s", runtimeJSON(t, rt))
			}
		}
		if fi, err := os.Lstat(f.path); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			t.Fatalf("symlink replaced: %v %v", fi, err)
		}
		if !bytes.Equal(f.readFileAt(target), content) {
			t.Fatal("symlink target modified")
		}
	})
	t.Run("directory", func(t *testing.T) {
		f := newCacheFixture(t, "l4")
		elsewhere := t.TempDir()
		if err := os.Symlink(elsewhere, filepath.Dir(f.path)); err != nil {
			t.Fatal(err)
		}
		f.expect(false, "symlinked directory")
		f.expect(false, "symlinked directory again")
		if entries, _ := os.ReadDir(elsewhere); len(entries) != 0 {
			t.Fatalf("written through the directory symlink: %v", entries)
		}
	})
}

func (f *cacheFixture) readFileAt(p string) []byte {
	f.t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

// unwritableDir returns a directory this process cannot create files in: a
// read-only temp dir, or for root (whom modes do not stop) a sysfs or procfs
// directory. It fails the test if the directory is writable after all.
func unwritableDir(t *testing.T) string {
	t.Helper()
	var dir string
	if os.Geteuid() != 0 {
		dir = t.TempDir()
		if err := os.Chmod(dir, 0o555); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod(dir, 0o755) })
	} else {
		for _, d := range []string{"/sys/kernel", fmt.Sprintf("/proc/%d", os.Getpid())} {
			if fi, err := os.Lstat(d); err == nil && fi.IsDir() {
				dir = d
				break
			}
		}
		if dir == "" {
			t.Fatal("running as root and neither /sys/kernel nor /proc/<pid> is available")
		}
	}
	probe := filepath.Join(dir, "modelcache-write-test")
	if err := os.WriteFile(probe, nil, 0o644); err == nil {
		os.Remove(probe)
		t.Fatalf("%s is writable", dir)
	}
	return dir
}

// TestCachedProbeUnwritableDir: when the file cannot be written, the fresh
// x-ray is returned without error, every time.
func TestCachedProbeUnwritableDir(t *testing.T) {
	dir := unwritableDir(t)
	for _, p := range []string{
		filepath.Join(dir, "modelcache-xray.json"),         // directory exists
		filepath.Join(dir, "modelcache-meta", "xray.json"), // directory cannot be created
	} {
		f := newCacheFixture(t, "l4")
		f.path = p
		want, err := Probe(context.Background(), f.o)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 2; i++ {
			if rt := f.expect(false, p); !reflect.DeepEqual(rt, want) {
				t.Fatalf("%s: got %s", p, runtimeJSON(t, rt))
			}
		}
		if _, err := os.Lstat(p); err == nil {
			t.Fatalf("%s written", p)
		}
	}
}

// TestCachedProbeErrorNotCached: a probe error (an invalid setting) is
// returned with the facts and nothing is stored.
func TestCachedProbeErrorNotCached(t *testing.T) {
	f := newCacheFixture(t, "l4")
	f.o.L4TVersion, f.o.RunningOnJetson = "R36", "true"
	for i := 0; i < 2; i++ {
		_, hit, err := CachedProbe(context.Background(), f.o, f.path, f.now)
		var ie *InvalidEnvError
		if !errors.As(err, &ie) || hit {
			t.Fatalf("hit %v, err %v", hit, err)
		}
	}
	if _, err := os.Lstat(f.path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("cache file written: %v", err)
	}
}

// TestCachedProbeTransientFailureNotCached: a command that timed out, or a
// context that ended, leaves facts unknown for a reason that may not last:
// the result is returned but not stored.
func TestCachedProbeTransientFailureNotCached(t *testing.T) {
	t.Run("command timeout", func(t *testing.T) {
		f := newCacheFixture(t, "l4")
		run := f.o.Run
		f.o.Run = func(ctx context.Context, name string, args ...string) ([]byte, error) {
			if name == "nvidia-smi" {
				*f.calls = append(*f.calls, name)
				return nil, fmt.Errorf("nvidia-smi: %w", context.DeadlineExceeded)
			}
			return run(ctx, name, args...)
		}
		rt := f.expect(false, "timeout")
		if rt.Facts.GPUAvailable {
			t.Fatal("GPU without nvidia-smi")
		}
		f.expect(false, "timeout again")
	})
	t.Run("slow command", func(t *testing.T) {
		f := newCacheFixture(t, "cpu-only")
		f.o.CommandTimeout = 20 * time.Millisecond
		run := f.o.Run
		f.o.Run = func(ctx context.Context, name string, args ...string) ([]byte, error) {
			if name == "dpkg" {
				*f.calls = append(*f.calls, name)
				time.Sleep(25 * time.Millisecond)
				return nil, errors.New("signal: killed")
			}
			return run(ctx, name, args...)
		}
		f.expect(false, "killed at the timeout")
		f.expect(false, "killed again")
	})
	t.Run("context canceled", func(t *testing.T) {
		f := newCacheFixture(t, "l4")
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, hit, err := CachedProbe(ctx, f.o, f.path, f.now)
		if err != nil || hit {
			t.Fatalf("hit %v err %v", hit, err)
		}
		if _, err := os.Lstat(f.path); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("stored after cancellation: %v", err)
		}
	})
}

// TestCachedProbeRacyInputNotCached: an input modified within racyWindow of
// the probe may have changed after the probe read it; such a result is not
// stored until the input has been quiet for a while.
func TestCachedProbeRacyInputNotCached(t *testing.T) {
	f := newCacheFixture(t, "l4")
	f.dir("/usr/local/lib/python3.10/dist-packages", cacheEpoch.Add(-time.Second))
	f.expect(false, "first call")
	f.expect(false, "input still recent")
	f.now = f.now.Add(racyWindow)
	f.expect(false, "input now old enough: stored")
	f.expect(true, "served")
}

// TestCachedProbeReplaysWarnings: a cached x-ray logs its warnings as Probe
// does, and keeps them in the result.
func TestCachedProbeReplaysWarnings(t *testing.T) {
	f := newCacheFixture(t, "l4")
	var buf bytes.Buffer
	f.o.Logger = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	f.expect(false, "first call")
	buf.Reset()
	rt := f.expect(true, "second call")
	if len(rt.Warnings) != 1 || !strings.Contains(buf.String(), "newer than the CUDA version") {
		t.Fatalf("warnings %q, log %q", rt.Warnings, buf.String())
	}
}

// TestCachedProbeNoPath: an empty path disables the cache.
func TestCachedProbeNoPath(t *testing.T) {
	f := newCacheFixture(t, "l4")
	f.path = ""
	f.expect(false, "first")
	f.expect(false, "second")
}

// countingExec is the real runner, counting its calls.
func countingExec(n *atomic.Int64) Runner {
	run := ExecRunner(0)
	return func(ctx context.Context, name string, args ...string) ([]byte, error) {
		n.Add(1)
		return run(ctx, name, args...)
	}
}

// TestCachedProbeRealHost runs the cache against this machine: the second
// call runs no command and returns the same x-ray.
func TestCachedProbeRealHost(t *testing.T) {
	var n atomic.Int64
	o := Options{Run: countingExec(&n)}
	p := filepath.Join(t.TempDir(), "xray.json")
	fresh, hit, err := CachedProbe(context.Background(), o, p, time.Now())
	if err != nil || hit || n.Load() == 0 {
		t.Fatalf("first call: hit %v, err %v, %d commands", hit, err, n.Load())
	}
	if _, err := os.Lstat(p); err != nil {
		t.Fatalf("not stored (an input changed in the last %v?): %v", racyWindow, err)
	}
	n.Store(0)
	cached, hit, err := CachedProbe(context.Background(), o, p, time.Now())
	if err != nil || !hit || n.Load() != 0 {
		t.Fatalf("second call: hit %v, err %v, %d commands", hit, err, n.Load())
	}
	if !reflect.DeepEqual(cached, fresh) {
		t.Fatalf("cached\n got %s\nwant %s", runtimeJSON(t, cached), runtimeJSON(t, fresh))
	}
}

// BenchmarkCachedProbeHit measures the warm path: read and decode the file,
// compute key and validator (stats, /proc reads), check the facts.
func BenchmarkCachedProbeHit(b *testing.B) {
	ctx := context.Background()
	b.Run("recorded-host", func(b *testing.B) {
		mfs := fstest.MapFS{
			"etc/os-release":             {Data: []byte("NAME=\"Ubuntu\"\nVERSION_ID=\"22.04\"\n")},
			"proc/driver/nvidia/version": {Data: []byte("NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  550.90.07  Release Build\n")},
			"usr/local/lib/python3.10/dist-packages/torch/__init__.py": {},
			"usr/local/lib/python3.10/dist-packages/torch/version.py":  {Data: []byte("__version__ = '2.7.0+cu126'\n")},
			"usr/local/lib/libonnxruntime.so.1.22.0":                   {},
			"usr/bin/python3":                                          {Mode: 0o755},
		}
		var runs atomic.Int64
		o := Options{FS: mfs, Machine: "x86_64",
			Getenv: func(k string) (string, bool) {
				if k == "PATH" {
					return "/usr/local/bin:/usr/bin:/bin", true
				}
				return "", false
			},
			Run: func(_ context.Context, name string, args ...string) ([]byte, error) {
				runs.Add(1)
				switch name {
				case "nvidia-smi":
					if len(args) > 0 {
						return []byte("0, 00000000:00:03.0, GPU-1, NVIDIA L4, 8.9\n"), nil
					}
					return []byte("CUDA Version: 12.4\n"), nil
				case "python3":
					return []byte("/usr/lib/python310.zip\n/usr/lib/python3.10\n/usr/local/lib/python3.10/dist-packages\n/usr/lib/python3/dist-packages\n"), nil
				case "ldconfig":
					return []byte("\tlibonnxruntime.so.1 (libc6,x86-64) => /usr/local/lib/libonnxruntime.so.1\n"), nil
				}
				return nil, exec.ErrNotFound
			}}
		benchHits(b, ctx, o, &runs)
	})
	b.Run("this-host", func(b *testing.B) {
		var runs atomic.Int64
		benchHits(b, ctx, Options{Run: countingExec(&runs)}, &runs)
	})
}

func benchHits(b *testing.B, ctx context.Context, o Options, runs *atomic.Int64) {
	p := filepath.Join(b.TempDir(), "xray.json")
	if _, _, err := CachedProbe(ctx, o, p, time.Now()); err != nil {
		b.Fatal(err)
	}
	runs.Store(0)
	for b.Loop() {
		_, hit, err := CachedProbe(ctx, o, p, time.Now())
		if err != nil || !hit {
			b.Fatalf("hit %v err %v", hit, err)
		}
	}
	if runs.Load() != 0 {
		b.Fatalf("%d commands ran on hits", runs.Load())
	}
}
