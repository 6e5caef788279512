//go:build unix

package blobfs

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/lock"
)

// The test binary doubles as the child process: with BLOBTEST_CHILD set,
// TestMain runs that role instead of the tests.
const childEnv = "BLOBTEST_CHILD"

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "":
		os.Exit(m.Run())
	case "publish":
		publishChild()
	case "crash":
		crashChild()
	default:
		fmt.Fprintln(os.Stderr, "unknown child role")
		os.Exit(2)
	}
	os.Exit(0)
}

func childFatal(format string, a ...any) {
	fmt.Fprintf(os.Stderr, "child %d: "+format+"\n", append([]any{os.Getpid()}, a...)...)
	os.Exit(3)
}

func childCmd(role string, env ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{childEnv + "=" + role}, env...)...)
	cmd.Stderr = os.Stderr
	return cmd
}

// slowReader hands out data in chunk-sized reads with a pause before each,
// so that concurrent writers overlap and a SIGKILL lands mid-stream.
type slowReader struct {
	data  []byte
	chunk int
	pause time.Duration
}

func (r *slowReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	time.Sleep(r.pause)
	n := min(len(p), r.chunk, len(r.data))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

// publishChild waits for the start file, then publishes one blob.
func publishChild() {
	home, start := os.Getenv("BLOBTEST_HOME"), os.Getenv("BLOBTEST_START")
	seed, _ := strconv.ParseInt(os.Getenv("BLOBTEST_SEED"), 10, 64)
	size, _ := strconv.Atoi(os.Getenv("BLOBTEST_SIZE"))
	data := randBytes(seed, size)
	sum := md5hex(data)
	s, err := Open(home, lock.NewLocker(lock.Options{Timeout: 60 * time.Second, PollInterval: 2 * time.Millisecond}))
	if err != nil {
		childFatal("open: %v", err)
	}
	s.noLock = os.Getenv("BLOBTEST_NOLOCK") == "1"
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Microsecond) {
		if _, err := os.Stat(start); err == nil {
			break
		}
		if time.Now().After(deadline) {
			childFatal("start file never appeared")
		}
	}
	p, err := s.Put(context.Background(), sum, &slowReader{data: data, chunk: 256 << 10, pause: time.Millisecond}, int64(len(data)))
	if err != nil {
		childFatal("put: %v", err)
	}
	fmt.Println(p)
}

// TestMultiProcessPublish: 10 real processes, released together by a start
// file, publish the same 4 MiB blob at once, with the blob lock and without
// it. Every process succeeds and returns the blob path, exactly one blob file
// with the right content exists, and no temp or partial file is left.
func TestMultiProcessPublish(t *testing.T) {
	const procs = 10
	for _, noLock := range []string{"0", "1"} {
		t.Run("nolock="+noLock, func(t *testing.T) {
			dir := t.TempDir()
			home := filepath.Join(dir, "home")
			start := filepath.Join(dir, "start")
			const seed, size = 42, 4 << 20
			sum := md5hex(randBytes(seed, size))
			var cmds []*exec.Cmd
			var outs []*bytes.Buffer
			for i := 0; i < procs; i++ {
				cmd := childCmd("publish", "BLOBTEST_HOME="+home, "BLOBTEST_START="+start,
					fmt.Sprint("BLOBTEST_SEED=", seed), fmt.Sprint("BLOBTEST_SIZE=", size), "BLOBTEST_NOLOCK="+noLock)
				out := new(bytes.Buffer)
				cmd.Stdout = out
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				cmds, outs = append(cmds, cmd), append(outs, out)
			}
			time.Sleep(100 * time.Millisecond) // let every child reach its start loop
			if err := os.WriteFile(start, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			want := filepath.Join(home, DirName, sum)
			for i, cmd := range cmds {
				if err := cmd.Wait(); err != nil {
					t.Errorf("child %d: %v", i, err)
				}
				if got := strings.TrimSpace(outs[i].String()); got != want {
					t.Errorf("child %d returned %q", i, got)
				}
			}
			var blobs int
			for _, n := range listDir(t, filepath.Join(home, DirName)) {
				switch k, _ := Classify(n); k {
				case KindBlob:
					blobs++
				case KindLock:
					if noLock == "1" {
						t.Errorf("lock file %s in lock-free mode", n)
					}
				default:
					t.Errorf("leftover %s (%v)", n, k)
				}
			}
			if blobs != 1 {
				t.Fatalf("%d blob files", blobs)
			}
			got, _ := os.ReadFile(want)
			if md5hex(got) != sum {
				t.Fatal("published blob has wrong content")
			}
		})
	}
}

// jsonDoc is the content the crash child writes atomically: the payload is a
// pure function of seq so that the parent can check a file is exactly one
// complete version.
func jsonDoc(seq int) []byte {
	pad := strings.Repeat(string(rune('a'+seq%26)), (seq*7919)%150000)
	b, _ := json.Marshal(map[string]any{"seq": seq, "pad": pad})
	return b
}

// crashChild publishes random blobs (some multi-MB, streamed slowly) and
// rewrites three JSON files atomically, forever, until SIGKILLed.
func crashChild() {
	home, jdir := os.Getenv("BLOBTEST_HOME"), os.Getenv("BLOBTEST_JSONDIR")
	seed, _ := strconv.ParseInt(os.Getenv("BLOBTEST_SEED"), 10, 64)
	s, err := Open(home, lock.NewLocker(lock.Options{}))
	if err != nil {
		childFatal("open: %v", err)
	}
	rng := rand.New(rand.NewSource(seed))
	fmt.Println("ready")
	for i := 0; ; i++ {
		size := rng.Intn(64 << 10)
		if rng.Intn(3) == 0 {
			size = 1<<20 + rng.Intn(4<<20)
		}
		data := make([]byte, size)
		rng.Read(data)
		sum := md5hex(data)
		r := &slowReader{data: data, chunk: 128 << 10, pause: 500 * time.Microsecond}
		if _, err := s.Put(context.Background(), sum, r, int64(size)); err != nil {
			childFatal("put: %v", err)
		}
		seq := int(seed)*1000 + i
		if err := fsx.WriteFileAtomic(filepath.Join(jdir, fmt.Sprintf("state-%d.json", i%3)), jsonDoc(seq), 0o644); err != nil {
			childFatal("write json: %v", err)
		}
	}
}

// TestCrashSafety: 60 times, a child publishing blobs and writing JSON files
// is SIGKILLed at a random moment. After every kill, each file under a final
// name is complete and correct: a blob named <md5> has that MD5, and each
// state-N.json is valid JSON equal to exactly one version the child wrote.
// Leftover temps are allowed only under names GC recognises (Classify,
// fsx.ParseAtomicTempName), and at least some kills must hit a partial.
func TestCrashSafety(t *testing.T) {
	const iterations = 60
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	jdir := filepath.Join(dir, "json")
	os.MkdirAll(jdir, 0o755)
	blobs := filepath.Join(home, DirName)
	rng := rand.New(rand.NewSource(time.Now().UnixNano()))
	var published, partials, jsonTemps, jsonFiles int
	startAll := time.Now()
	for it := 0; it < iterations; it++ {
		cmd := childCmd("crash", "BLOBTEST_HOME="+home, "BLOBTEST_JSONDIR="+jdir, fmt.Sprint("BLOBTEST_SEED=", it+1))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("iteration %d: child did not start: %q %v", it, line, err)
		}
		time.Sleep(time.Duration(rng.Intn(150_000)) * time.Microsecond)
		cmd.Process.Signal(syscall.SIGKILL)
		err = cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("iteration %d: child ended on its own: %v", it, err)
		}

		// Blobs: every final name must hold exactly its bytes.
		for _, n := range listDir(t, blobs) {
			p := filepath.Join(blobs, n)
			switch k, _ := Classify(n); k {
			case KindBlob:
				f, err := os.Open(p)
				if err != nil {
					t.Fatal(err)
				}
				h := md5.New()
				io.Copy(h, f)
				f.Close()
				if got := hex.EncodeToString(h.Sum(nil)); got != n {
					t.Fatalf("iteration %d: blob %s holds content with MD5 %s", it, n, got)
				}
				published++
				os.Remove(p) // keep disk use flat; the next child starts clean
			case KindPartial:
				partials++
				os.Remove(p)
			case KindLock:
			default:
				t.Fatalf("iteration %d: unrecognisable leftover %s", it, n)
			}
		}
		// JSON: complete and equal to one written version, or a named temp.
		for _, n := range listDir(t, jdir) {
			p := filepath.Join(jdir, n)
			if final, ok := fsx.ParseAtomicTempName(n); ok && strings.HasPrefix(final, "state-") {
				jsonTemps++
				os.Remove(p)
				continue
			}
			if !strings.HasPrefix(n, "state-") || !strings.HasSuffix(n, ".json") {
				t.Fatalf("iteration %d: unrecognisable file %s", it, n)
			}
			data, _ := os.ReadFile(p)
			var doc struct{ Seq int }
			if err := json.Unmarshal(data, &doc); err != nil {
				t.Fatalf("iteration %d: %s is not valid JSON (%d bytes): %v", it, n, len(data), err)
			}
			if !bytes.Equal(data, jsonDoc(doc.Seq)) {
				t.Fatalf("iteration %d: %s is not a version the writer produced (seq %d)", it, n, doc.Seq)
			}
			jsonFiles++
		}
	}
	t.Logf("%d kills in %v: %d blobs published and verified, %d partials and %d JSON temps left by kills, %d JSON files checked",
		iterations, time.Since(startAll).Round(time.Millisecond), published, partials, jsonTemps, jsonFiles)
	if published == 0 || jsonFiles == 0 {
		t.Fatal("the child never got to publish anything: the test proves nothing")
	}
	if partials == 0 {
		t.Fatal("no kill landed mid-stream: the test proves nothing")
	}
}
