package journal

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/modelcache/modelcache/internal/blobfs"
)

func TestRoundTripAndNames(t *testing.T) {
	dir := t.TempDir()
	md5 := "0123456789abcdef0123456789abcdef"
	p := filepath.Join(dir, "."+md5+".partial-0011223344556677.json")
	j := &File{Version: 1, MD5: md5, Size: 100, ETag: `"e"`, URLPath: "https://h/p", RangeHash: XXH64,
		RangesDone: []Range{{0, 9, "a"}, {20, 29, "b"}}, Owner: Owner{Host: "h", PID: 1, StartTime: "5", Token: "0011223344556677"}}
	if err := Write(p, j); err != nil {
		t.Fatal(err)
	}
	back, err := Read(p)
	if err != nil || back.DoneBytes() != 20 || back.RangesDone[1].Hash != "b" || back.Heartbeat().IsZero() || back.Algo() != XXH64 {
		t.Fatalf("%+v %v", back, err)
	}
	if k, m := blobfs.Classify(filepath.Base(p)); k != blobfs.KindJournal || m != md5 {
		t.Errorf("blobfs does not classify the journal: %v %s", k, m)
	}
	if k, _ := blobfs.Classify("." + md5 + ".partial-0011223344556677"); k != blobfs.KindPartial {
		t.Errorf("blobfs does not classify the partial")
	}
	for _, bad := range []string{
		`{"version":2,"size":1,"ranges_done":[]}`,
		`{"version":1,"size":10,"ranges_done":[[5,3,"x"]]}`,
		`{"version":1,"size":10,"ranges_done":[[0,10,"x"]]}`,
		`{"version":1,"size":10,"ranges_done":[[0,4,"x"],[3,6,"y"]]}`,
		`{"version":1,"size":10,"range_hash":"md4","ranges_done":[]}`,
		`{"version":1,"size":10,"ranges_done":[[0,4]]}`,
		`{"version":1,"size":-1,"ranges_done":[]}`,
	} {
		if err := os.WriteFile(p, []byte(bad), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Read(p); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
	// Never through a symlink.
	link := filepath.Join(dir, "link.json")
	if err := os.Symlink(p, link); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(link); err == nil {
		t.Error("read a journal through a symlink")
	}
}

func TestHashFileRange(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), "r")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data := []byte("0123456789abcdefghij")
	f.Write(data)
	for _, algo := range []string{XXH64, SHA256} {
		h := NewHasher(algo)
		h.Write(data[3:7])
		mid := h.Sum()
		h.Write(data[7:15])
		want := h.Sum()
		if mid == want {
			t.Fatalf("%s: Sum does not follow writes", algo)
		}
		got, err := HashFileRange(f, 3, 14, algo, make([]byte, 5))
		if err != nil || got != want {
			t.Errorf("%s: HashFileRange = %s %v, want %s", algo, got, err, want)
		}
		if _, err := HashFileRange(f, 15, 40, algo, make([]byte, 8)); err == nil {
			t.Errorf("%s: a range past EOF hashed without error", algo)
		}
	}
}

func TestLiveness(t *testing.T) {
	self := Self()
	if self.StartTime == "" {
		t.Fatal("no process start time on Linux")
	}
	now := time.Now()
	l := Liveness{Self: self, TokenActive: func(tok string) bool { return tok == "live" }, RemoteStale: time.Second}
	other := func(pid int, start string) Owner { return Owner{Host: self.Host, PID: pid, StartTime: start} }
	mine := func(tok string) Owner { o := self; o.Token = tok; return o }
	for _, tc := range []struct {
		name  string
		o     Owner
		hb    time.Time
		alive bool
	}{
		{"this process, token in use", mine("live"), time.Time{}, true},
		{"this process, token done", mine("gone"), time.Time{}, false},
		{"parent", other(os.Getppid(), ProcessStartTime(os.Getppid())), time.Time{}, true},
		{"pid reused", other(os.Getppid(), "1"), time.Time{}, false},
		{"no such pid", other(1<<30, ""), time.Time{}, false},
		{"no pid", other(0, ""), time.Time{}, false},
		{"other host, fresh heartbeat", Owner{Host: "elsewhere", PID: 1}, now, true},
		{"other host, old heartbeat", Owner{Host: "elsewhere", PID: 1}, now.Add(-3 * time.Second), false},
	} {
		if got := l.Alive(tc.o, tc.hb, now); got != tc.alive {
			t.Errorf("%s: alive %v, want %v", tc.name, got, tc.alive)
		}
	}
}

// A killed child that its parent has not reaped yet is a zombie: its /proc
// entry remains, but it can never write again, so it must not count as a
// live owner (else nobody could take over its partial), for the engine and
// for gc alike.
func TestZombieIsDead(t *testing.T) {
	cmd := exec.Command("sleep", "30")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	pid := cmd.Process.Pid
	start := ProcessStartTime(pid)
	if !PIDAlive(pid, start) {
		t.Fatal("a running child is not alive")
	}
	old := time.Now().Add(-48 * time.Hour)
	j := &File{Version: 1, Size: 10, RangesDone: []Range{}, Owner: Owner{Host: Self().Host, PID: pid, StartTime: start},
		HeartbeatAt: old.UTC().Format(time.RFC3339Nano)}
	b := mustJSON(t, j)
	if Abandoned(b, old, time.Now(), 24*time.Hour) {
		t.Fatal("gc would remove the partial of a live owner")
	}
	cmd.Process.Signal(syscall.SIGKILL)
	deadline := time.Now().Add(10 * time.Second)
	for ProcessState(pid) != "Z" {
		if time.Now().After(deadline) {
			t.Fatal("child never became a zombie")
		}
		time.Sleep(2 * time.Millisecond)
	}
	if PIDAlive(pid, start) {
		t.Error("a zombie counts as a live owner")
	}
	if !Abandoned(b, old, time.Now(), 24*time.Hour) {
		t.Error("gc keeps the partial of a zombie")
	}
}

func TestAbandoned(t *testing.T) {
	now := time.Now()
	grace := time.Hour
	old, young := now.Add(-2*grace), now.Add(-grace/2)
	beat := func(at time.Time, o Owner) []byte {
		return mustJSON(t, &File{Version: 1, Size: 1, RangesDone: []Range{}, Owner: o, HeartbeatAt: at.UTC().Format(time.RFC3339Nano)})
	}
	self := Self()
	for _, tc := range []struct {
		name  string
		data  []byte
		mtime time.Time
		want  bool
	}{
		{"no journal, old", nil, old, true},
		{"no journal, young", nil, young, false},
		{"garbage journal, old mtime", []byte("{"), old, true},
		{"garbage journal, young mtime", []byte("{"), young, false},
		{"dead owner, old heartbeat", beat(old, Owner{Host: self.Host, PID: 1 << 30}), old, true},
		{"dead owner, young heartbeat", beat(young, Owner{Host: self.Host, PID: 1 << 30}), old, false},
		{"live owner, old heartbeat", beat(old, self), old, false},
		{"other host, old heartbeat", beat(old, Owner{Host: "elsewhere", PID: 1}), old, true},
		{"other host, young heartbeat", beat(young, Owner{Host: "elsewhere", PID: 1}), old, false},
	} {
		if got := Abandoned(tc.data, tc.mtime, now, grace); got != tc.want {
			t.Errorf("%s: abandoned %v, want %v", tc.name, got, tc.want)
		}
	}
}
