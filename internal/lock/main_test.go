//go:build unix && !aix

package lock

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The test binary doubles as the child process of the cross-process tests:
// with LOCKTEST_CHILD set, TestMain runs that child role instead of the tests.
const childEnv = "LOCKTEST_CHILD"

func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "":
		os.Exit(m.Run())
	case "raw":
		rawChild(os.Getenv("LOCKTEST_PATH"))
	case "exclusion":
		exclusionChild()
	default:
		fmt.Fprintln(os.Stderr, "unknown child role", os.Getenv(childEnv))
		os.Exit(2)
	}
	os.Exit(0)
}

// rawChild behaves like a Python filelock peer driven line by line over stdin:
// plain open + blocking flock, no re-checks, optional unlink while holding.
func rawChild(path string) {
	sc := bufio.NewScanner(os.Stdin)
	fd := -1
	var held *Held
	reply := func(format string, a ...any) { fmt.Printf(format+"\n", a...) }
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		var err error
		switch f[0] {
		case "lock":
			fd, err = unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o644)
			if err == nil {
				err = unix.Flock(fd, unix.LOCK_EX)
			}
			var st unix.Stat_t
			if err == nil {
				err = unix.Fstat(fd, &st)
			}
			if err == nil {
				reply("locked %d", st.Ino)
				continue
			}
		case "glock": // our Locker, so the read-only fallback is exercised
			held, err = NewLocker(Options{}).Lock(context.Background(), path)
		case "gunlock":
			err = held.Unlock()
		case "unlink":
			err = unix.Unlink(path)
		case "rename":
			err = unix.Rename(path, f[1])
		case "unlock":
			err = unix.Flock(fd, unix.LOCK_UN)
			unix.Close(fd)
		case "exit":
			return
		default:
			err = fmt.Errorf("unknown command %q", f[0])
		}
		if err != nil {
			reply("error %v", err)
		} else {
			reply("ok")
		}
	}
}

// exclusionChild takes the lock LOCKTEST_ITER times with a Locker and checks,
// with an O_EXCL marker file, that nobody else is inside at the same time.
func exclusionChild() {
	path := os.Getenv("LOCKTEST_PATH")
	iters, _ := strconv.Atoi(os.Getenv("LOCKTEST_ITER"))
	marker := path + ".inside"
	l := NewLocker(Options{Timeout: 60 * time.Second, PollInterval: time.Millisecond,
		UnlinkOnRelease: os.Getenv("LOCKTEST_UNLINK") == "1"})
	waitStart(os.Getenv("LOCKTEST_START"))
	for i := 0; i < iters; i++ {
		h, err := l.Lock(context.Background(), path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "lock:", err)
			os.Exit(3)
		}
		f, err := os.OpenFile(marker, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			fmt.Fprintln(os.Stderr, "EXCLUSION VIOLATED:", err)
			os.Exit(4)
		}
		f.Close()
		time.Sleep(time.Duration(i%3) * time.Millisecond)
		if err := os.Remove(marker); err != nil {
			fmt.Fprintln(os.Stderr, "remove marker:", err)
			os.Exit(5)
		}
		if err := h.Unlock(); err != nil {
			fmt.Fprintln(os.Stderr, "unlock:", err)
			os.Exit(6)
		}
	}
}

func waitStart(path string) {
	if path == "" {
		return
	}
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if _, err := os.Stat(path); err == nil {
			return
		}
	}
	fmt.Fprintln(os.Stderr, "start file never appeared")
	os.Exit(7)
}

// child is a running raw child with a line protocol.
type child struct {
	t     *testing.T
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
}

func childCmd(t *testing.T, role string, env ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append([]string{childEnv + "=" + role}, env...)...)
	cmd.Stderr = os.Stderr
	return cmd
}

func startRaw(t *testing.T, path string, attr *syscall.SysProcAttr, bin string) *child {
	t.Helper()
	cmd := childCmd(t, "raw", "LOCKTEST_PATH="+path)
	if bin != "" {
		cmd.Path = bin
		cmd.Args[0] = bin
	}
	cmd.SysProcAttr = attr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{t: t, cmd: cmd, in: in, lines: make(chan string, 16)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
	}()
	t.Cleanup(func() {
		in.Close()
		cmd.Process.Kill()
		cmd.Wait()
	})
	return c
}

// do sends a command and returns the reply (fails the test on "error").
func (c *child) do(line string) string {
	c.t.Helper()
	if _, err := fmt.Fprintln(c.in, line); err != nil {
		c.t.Fatalf("send %q: %v", line, err)
	}
	select {
	case r, ok := <-c.lines:
		if !ok {
			c.t.Fatalf("child exited during %q", line)
		}
		if strings.HasPrefix(r, "error") {
			c.t.Fatalf("child %q: %s", line, r)
		}
		return r
	case <-time.After(20 * time.Second):
		c.t.Fatalf("child did not answer %q", line)
	}
	return ""
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

type result struct {
	h   *Held
	err error
}

func lockAsync(l *Locker, path string, opts ...CallOption) chan result {
	ch := make(chan result, 1)
	go func() {
		h, err := l.Lock(context.Background(), path, opts...)
		ch <- result{h, err}
	}()
	return ch
}

func expectPending(t *testing.T, ch chan result, d time.Duration) {
	t.Helper()
	select {
	case r := <-ch:
		if r.h != nil {
			r.h.Unlock()
		}
		t.Fatalf("Lock returned while the lock was held elsewhere (err=%v)", r.err)
	case <-time.After(d):
	}
}

func expectAcquired(t *testing.T, ch chan result) *Held {
	t.Helper()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("Lock: %v", r.err)
		}
		return r.h
	case <-time.After(20 * time.Second):
		t.Fatal("Lock did not return")
	}
	return nil
}
