//go:build unix

package materialize_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelcache/modelcache/internal/autoresolve"
	"github.com/modelcache/modelcache/internal/manifest"
	"github.com/modelcache/modelcache/internal/materialize"
	"github.com/modelcache/modelcache/metadata"
)

// The test binary doubles as the child process.
const childEnv = "MATERIALIZE_TEST_CHILD"

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "":
		os.Exit(m.Run())
	case "materialize":
		os.Exit(childMaterialize())
	default:
		fmt.Fprintln(os.Stderr, "unknown child role")
		os.Exit(2)
	}
}

// slowFetch streams in small chunks with pauses, so that processes overlap
// and a SIGKILL lands mid-stream.
func slowFetch(f *fixture, pause time.Duration) materialize.OpenFunc {
	return func(ctx context.Context, a metadata.Artifact) (io.ReadCloser, int64, error) {
		b, ok := f.files[a.FileHandle]
		if !ok {
			return nil, 0, fmt.Errorf("no file %q", a.FileHandle)
		}
		return io.NopCloser(&slowReader{r: bytes.NewReader(b), pause: pause}), int64(len(b)), nil
	}
}

type slowReader struct {
	r     io.Reader
	pause time.Duration
}

func (s *slowReader) Read(p []byte) (int, error) {
	time.Sleep(s.pause)
	if len(p) > 16<<10 {
		p = p[:16<<10]
	}
	return s.r.Read(p)
}

// childMaterialize waits for the start file, then materializes the fixture
// package into $HOME_DIR. Exit 0 on success.
func childMaterialize() int {
	root := os.Getenv("HOME_DIR")
	if start := os.Getenv("START_FILE"); start != "" {
		for {
			if _, err := os.Stat(start); err == nil {
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	pause, _ := time.ParseDuration(os.Getenv("PAUSE"))
	e := newEnv(&childTB{}, root)
	f := newFixture()
	entries, err := autoresolve.New(autoresolve.Options{Dir: e.home.AutoResolutionCache(), Locker: e.locks})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Println("ready")
	_, err = e.store.Materialize(context.Background(), request(f, true), materialize.StreamSource(e.blobs, slowFetch(f, pause)), materialize.Hooks{
		// Register the auto-resolution entry under the materialization lock, as a load does.
		Published: func(ctx context.Context, r *materialize.Result) error {
			return entries.Register(ctx, entryKey, resolutionOf(r))
		},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "child %d: %v\n", os.Getpid(), err)
		return 1
	}
	fmt.Println("done")
	return 0
}

const entryKey = "4c02875fd9561bd0d4d10ee9af9fa7bf2e6dc4ad02d36dc13fafd15cc0f4a6c4"

func resolutionOf(r *materialize.Result) autoresolve.Resolution {
	return autoresolve.Resolution{
		ModelID: "ws/det/3", CacheModelID: strp("ws/det/3"), CanonicalModelID: strp("ws/det/3"),
		ModelPackageID: "onnxpkg", ResolvedFiles: r.ResolvedFiles,
		ModelArchitecture: r.Spec.ModelArchitecture, TaskType: r.Spec.TaskType, BackendType: strp(r.Spec.BackendType),
		TrustedSource: r.Spec.TrustedSource,
	}
}

// childTB lets newEnv run outside a test.
type childTB struct{ testing.TB }

func (childTB) Helper() {}
func (childTB) Fatal(args ...any) {
	fmt.Fprintln(os.Stderr, args...)
	os.Exit(3)
}

func childCmd(env ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{childEnv + "=materialize"}, env...)...)
	return cmd
}

// Eight real processes materialize the same package (and so publish the same
// blobs) at once: all succeed, one file per blob, no temporary files left.
func TestConcurrentProcessesMaterializeSamePackage(t *testing.T) {
	root := t.TempDir()
	start := filepath.Join(t.TempDir(), "go")
	const n = 8
	cmds := make([]*exec.Cmd, n)
	outs := make([]*bytes.Buffer, n)
	for i := range cmds {
		outs[i] = &bytes.Buffer{}
		cmds[i] = childCmd("HOME_DIR="+root, "START_FILE="+start, "PAUSE=200us")
		cmds[i].Stderr = outs[i]
		if err := cmds[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond) // let every child reach the start line
	if err := os.WriteFile(start, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			t.Errorf("child %d failed: %v\n%s", i, err, outs[i])
		}
	}
	e := newEnv(t, root)
	f := newFixture()
	checkComplete(t, e, f)
	blobs, _ := os.ReadDir(e.home.SharedBlobs())
	var names []string
	for _, b := range blobs {
		if !strings.HasSuffix(b.Name(), ".lock") {
			names = append(names, b.Name())
		}
	}
	if len(names) != 4 {
		t.Errorf("shared-blobs holds %v, want exactly the 4 blobs", names)
	}
	assertNoTemps(t, root)
}

// checkComplete asserts the fixture package is complete and correct.
func checkComplete(t *testing.T, e *env, f *fixture) {
	t.Helper()
	dir, _ := e.home.PackageDir("ws/det/3", "onnxpkg")
	m, err := manifest.Read(context.Background(), dir)
	if err != nil || !m.Complete() {
		t.Fatalf("manifest: %v", err)
	}
	for h, b := range f.files {
		got, err := os.ReadFile(filepath.Join(dir, h))
		if err != nil || !bytes.Equal(got, b) {
			t.Errorf("%s: wrong content (%v)", h, err)
		}
	}
}

func assertNoTemps(t *testing.T, root string) {
	t.Helper()
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		n := d.Name()
		if strings.Contains(n, ".partial-") || strings.HasSuffix(n, ".tmp") || strings.Contains(n, ".link-") || strings.Contains(n, ".corrupt-") {
			t.Errorf("temporary file left: %s", p)
		}
		return nil
	})
}

// A child is killed with SIGKILL at a random point while it materializes.
// After every kill, nothing under a final name is partial or wrong: each blob
// has its MD5, each unhashed file is whole, and a manifest, if present,
// describes a package that verifies. A final run completes the package.
func TestSIGKILLDuringMaterialization(t *testing.T) {
	root := t.TempDir()
	f := newFixture()
	e := newEnv(t, root)
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	// Calibrate on this machine as it is now (the race detector and a busy CI
	// box change it a lot): kill points are spread over the materialization
	// itself, measured from the child's "ready" to its "done".
	work := runTimedChild(t, root, -1).work
	resetCache := func() {
		os.RemoveAll(e.home.AutoResolutionCache())
		os.RemoveAll(e.home.ModelsCache())
		os.RemoveAll(e.home.SharedBlobs())
		os.MkdirAll(e.home.SharedBlobs(), 0o755)
	}
	const iterations = 60
	killedMidway, entries, manifests := 0, 0, 0
	resetCache()
	for i := 0; i < iterations; i++ {
		r := runTimedChild(t, root, time.Duration(rng.Int63n(int64(work)*6/5+1)))
		if r.killed {
			killedMidway++
		}
		en, mf := checkNoPartialFinals(t, e, f, i)
		if en {
			entries++
		}
		if mf {
			manifests++
			// A finished package proves nothing more: start the next run from
			// scratch, so every run starts either empty or from a crash's leftovers.
			resetCache()
		}
	}
	if entries == 0 || manifests == 0 {
		t.Errorf("no iteration got as far as a manifest (%d) and an entry (%d): the checks above were vacuous", manifests, entries)
	}
	if killedMidway < iterations/3 {
		t.Errorf("only %d of %d children were killed before finishing; the test is not exercising crashes", killedMidway, iterations)
	}
	t.Logf("%d iterations (work ≈ %v), %d children killed before finishing; a manifest was present after %d and an entry after %d",
		iterations, work.Round(time.Millisecond), killedMidway, manifests, entries)
	if _, err := e.store.Materialize(context.Background(), request(f, true), materialize.StreamSource(e.blobs, f.fetch), materialize.Hooks{}); err != nil {
		t.Fatalf("materialization after crashes: %v", err)
	}
	checkComplete(t, e, f)
}

type childRun struct {
	work   time.Duration // from "ready" to "done" (uninterrupted runs)
	killed bool          // SIGKILLed before it printed "done"
}

// runTimedChild runs one materializing child. With killAfter >= 0 it sends
// SIGKILL that long after the child printed "ready".
func runTimedChild(t *testing.T, root string, killAfter time.Duration) childRun {
	t.Helper()
	cmd := childCmd("HOME_DIR="+root, "PAUSE=300us")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 4)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	if l := <-lines; l != "ready" {
		cmd.Wait()
		t.Fatalf("child did not get ready (%q): %s", l, stderr.String())
	}
	ready := time.Now()
	var r childRun
	if killAfter >= 0 {
		select {
		case l := <-lines:
			if l != "done" {
				t.Fatalf("child: unexpected %q: %s", l, stderr.String())
			}
		case <-time.After(killAfter):
			cmd.Process.Signal(syscall.SIGKILL)
			r.killed = <-lines != "done"
		}
		cmd.Wait()
		return r
	}
	if l := <-lines; l != "done" {
		cmd.Wait()
		t.Fatalf("calibration child failed: %s", stderr.String())
	}
	r.work = time.Since(ready)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("calibration child: %v: %s", err, stderr.String())
	}
	return r
}

func checkNoPartialFinals(t *testing.T, e *env, f *fixture, iter int) (entrySeen, manifestSeen bool) {
	t.Helper()
	want := map[string]bool{}
	for h, b := range f.files {
		if !strings.HasPrefix(h, "labels/") {
			want[md5hex(b)] = true
		}
	}
	entries, _ := os.ReadDir(e.home.SharedBlobs())
	for _, en := range entries {
		name := en.Name()
		if strings.HasPrefix(name, ".") {
			continue // locks and temps: never read as blobs
		}
		b, err := os.ReadFile(filepath.Join(e.home.SharedBlobs(), name))
		if err != nil {
			t.Fatalf("iteration %d: %s: %v", iter, name, err)
		}
		if !want[name] || md5hex(b) != name {
			t.Fatalf("iteration %d: blob %s holds wrong bytes (%d bytes)", iter, name, len(b))
		}
	}
	dir, _ := e.home.PackageDir("ws/det/3", "onnxpkg")
	if b, err := os.ReadFile(filepath.Join(dir, "labels", "unhashed.txt")); err == nil && !bytes.Equal(b, f.files["labels/unhashed.txt"]) {
		t.Fatalf("iteration %d: unhashed file partial (%d bytes)", iter, len(b))
	}
	// An entry, if present, is whole and names only files that exist.
	if b, err := os.ReadFile(filepath.Join(e.home.AutoResolutionCache(), entryKey+".json")); err == nil {
		entrySeen = true
		en, err := autoresolve.ParseEntry(b)
		if err != nil {
			t.Fatalf("iteration %d: entry partial or invalid: %v\n%s", iter, err, b)
		}
		for _, p := range en.ResolvedFiles {
			if _, err := os.Stat(p); err != nil {
				t.Fatalf("iteration %d: entry names missing file %s", iter, p)
			}
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	data, err := os.ReadFile(manifest.Path(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return entrySeen, false
	}
	if err != nil {
		t.Fatalf("iteration %d: %v", iter, err)
	}
	m, err := manifest.Parse(data)
	if err != nil || !m.Complete() {
		t.Fatalf("iteration %d: manifest partial or invalid: %v\n%s", iter, err, data)
	}
	// A published manifest means every file it names is in place.
	for h, b := range f.files {
		got, err := os.ReadFile(filepath.Join(dir, h))
		if err != nil || !bytes.Equal(got, b) {
			t.Fatalf("iteration %d: manifest published but %s is not complete (%v)", iter, h, err)
		}
	}
	return entrySeen, true
}
