//go:build unix

package maintain_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/modelcache/modelcache/internal/maintain"
	"github.com/modelcache/modelcache/internal/maintain/maintaintest"
)

var killModels = []string{"ka/1", "kb/2", "kc/3"}

// TestMain runs the child of TestPurgeRerunAfterKill when asked to:
// purge the models, report each step on stdout and, after step KILL_AT, say
// "waiting" and block until killed.
func TestMain(m *testing.M) {
	home := os.Getenv("MAINTAIN_PURGE_HELPER_HOME")
	if home == "" {
		os.Exit(m.Run())
	}
	killAt, _ := strconv.Atoi(os.Getenv("MAINTAIN_PURGE_HELPER_KILL_AT"))
	c := maintaintest.Open(helperTB{}, home)
	n := 0
	_, err := c.M.Purge(context.Background(), maintain.PurgeOptions{ModelIDs: killModels, Grace: time.Hour,
		Progress: func(ev maintain.PurgeEvent) {
			n++
			fmt.Printf("step %d %s %s\n", n, ev.Step, ev.Path)
			if n == killAt {
				fmt.Println("waiting")
				select {}
			}
		}})
	fmt.Printf("done %d %v\n", n, err)
	os.Exit(0)
}

// helperTB lets the child use maintaintest outside a test.
type helperTB struct{ testing.TB }

func (helperTB) Helper()                   {}
func (helperTB) Fatal(args ...any)         { fmt.Fprintln(os.Stderr, args...); os.Exit(3) }
func (helperTB) Fatalf(f string, a ...any) { fmt.Fprintf(os.Stderr, f+"\n", a...); os.Exit(3) }

// killCache: three models, each with a package (one blob of its own, one
// shared with a model that stays), an auto-resolution entry and an offline
// record.
func killCache(t *testing.T) (*maintaintest.Cache, []byte) {
	c := maintaintest.New(t)
	shared := maintaintest.Content("kill-shared", 4_000)
	c.Materialize(maintaintest.Package{ModelID: "stay/1", PackageID: "s", Files: map[string][]byte{"w": shared}})
	for i, id := range killModels {
		p := maintaintest.Package{ModelID: id, PackageID: "p" + strconv.Itoa(i),
			Files: map[string][]byte{"w": shared, "own": maintaintest.Content(id, 3_000+i)}}
		res := c.Materialize(p)
		c.Register(id, res)
		c.Record(id, "", p)
	}
	return c, shared
}

// TestPurgeRerunAfterKill (issue 11 §5): a purge of a list killed after any
// of its steps (kill points chosen from the progress the child reports) is
// finished by rerunning the same command: no error, what was already gone is
// reported as gone, nothing of the models is left, and nothing else is
// damaged.
func TestPurgeRerunAfterKill(t *testing.T) {
	ctx := context.Background()
	// How many steps a purge of the list takes.
	c, _ := killCache(t)
	steps := 0
	if _, err := c.M.Purge(ctx, maintain.PurgeOptions{ModelIDs: killModels, Progress: func(maintain.PurgeEvent) { steps++ }}); err != nil {
		t.Fatal(err)
	}
	if steps < 9 {
		t.Fatalf("only %d progress steps", steps)
	}
	for k := 1; k < steps; k++ {
		t.Run(fmt.Sprint("after step ", k), func(t *testing.T) {
			c, shared := killCache(t)
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), "MAINTAIN_PURGE_HELPER_HOME="+c.Home(), "MAINTAIN_PURGE_HELPER_KILL_AT="+strconv.Itoa(k))
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			lines := make(chan string)
			go func() {
				sc := bufio.NewScanner(out)
				for sc.Scan() {
					lines <- sc.Text()
				}
				close(lines)
			}()
			deadline := time.After(2 * time.Minute)
			var seen []string
		wait:
			for {
				select {
				case l, ok := <-lines:
					if !ok {
						t.Fatalf("child ended before step %d: %v", k, seen)
					}
					seen = append(seen, l)
					if l == "waiting" {
						break wait
					}
				case <-deadline:
					cmd.Process.Kill()
					t.Fatalf("child did not reach step %d: %v", k, seen)
				}
			}
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()
			go func() {
				for range lines {
				}
			}()

			r, err := c.M.Purge(ctx, maintain.PurgeOptions{ModelIDs: killModels, Grace: time.Hour})
			if err != nil {
				t.Fatalf("rerun after a kill at %q: %v", seen[len(seen)-2], err)
			}
			for _, p := range r.Packages {
				if p.Skipped != "" {
					t.Errorf("rerun kept %s: %s", p.Dir, p.Skipped)
				}
			}
			gone := 0
			for _, m := range r.Models {
				if m.State == "gone" {
					gone++
				} else if m.State != "removed" {
					t.Errorf("model %s: %s", m.ModelID, m.State)
				}
			}
			if gone == 0 && strings.Contains(strings.Join(seen, "\n"), " package ") {
				t.Errorf("a model whose package the killed run removed is not reported gone: %+v", r.Models)
			}
			// Nothing of the models is left; the model that stays verifies.
			for _, id := range killModels {
				if d, err := c.M.Show(ctx, id); err == nil {
					t.Errorf("%s still in the cache: %+v", id, d)
				}
				if !exists(c.BlobPath(maintaintest.Content(id, 3_000+indexOf(id)))) {
					continue
				}
				t.Errorf("the own blob of %s is left", id)
			}
			if !exists(c.BlobPath(shared)) {
				t.Error("the shared blob of the model that stays was removed")
			}
			v, err := c.M.Verify(ctx, maintain.VerifyOptions{Full: true})
			if err != nil || !v.OK || v.Packages != 1 {
				t.Errorf("verify after the rerun: %v %+v", err, v)
			}
			// A third run finds everything gone.
			r, err = c.M.Purge(ctx, maintain.PurgeOptions{ModelIDs: killModels})
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range r.Models {
				if m.State != "gone" {
					t.Errorf("third run: %s is %s", m.ModelID, m.State)
				}
			}
		})
	}
}

func indexOf(id string) int {
	for i, m := range killModels {
		if m == id {
			return i
		}
	}
	return -1
}
