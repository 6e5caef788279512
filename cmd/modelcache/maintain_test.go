package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/internal/maintain"
	"github.com/modelcache/modelcache/internal/maintain/maintaintest"
	"github.com/modelcache/modelcache/internal/materialize"
	"github.com/modelcache/modelcache/internal/meta"
)

// runCmd executes one maintenance command built by its constructor and
// returns stdout and the exit status main would use.
func runMaintCmd(t *testing.T, newCmd func(*config.Config) *cobra.Command, cfg config.Config, args ...string) (string, int, error) {
	t.Helper()
	cmd := newCmd(&cfg)
	var out, errb bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SetArgs(args)
	err := cmd.ExecuteContext(context.Background())
	code := 0
	if err != nil {
		code = 1
		var ec interface{ ExitCode() int }
		if errors.As(err, &ec) {
			code = ec.ExitCode()
		}
	}
	return out.String(), code, err
}

type cliCache struct {
	*maintaintest.Cache
	weights, own []byte
	a, b, s      *materialize.Result
	pa           maintaintest.Package
}

func newCLICache(t *testing.T) *cliCache {
	c := &cliCache{Cache: maintaintest.New(t), weights: maintaintest.Content("w", 200_000), own: maintaintest.Content("own", 3_000)}
	c.pa = maintaintest.Package{ModelID: "ws/det/3", PackageID: "onnxa", Files: map[string][]byte{"weights.onnx": c.weights, "own.bin": c.own}}
	c.a = c.Materialize(c.pa)
	c.b = c.Materialize(maintaintest.Package{ModelID: "ws/det/3", PackageID: "onnxb", Files: map[string][]byte{"weights.onnx": c.weights}})
	c.s = c.Materialize(maintaintest.Package{ModelID: "ws/seg/1", PackageID: "segp", Files: map[string][]byte{"weights.onnx": c.weights}})
	c.Register("ws/det/3", c.a)
	c.Record("ws/det/3", "det", c.pa)
	return c
}

func TestCLILsDuShow(t *testing.T) {
	c := newCLICache(t)
	if err := meta.TouchLastUsed(c.C.Home, "ws/det/3", "onnxa"); err != nil {
		t.Fatal(err)
	}
	out, code, err := runMaintCmd(t, newLsCmd, c.Config, "--json")
	if code != 0 {
		t.Fatal(err)
	}
	var l maintain.Listing
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if len(l.Models) != 2 || len(l.Models[0].Packages) != 2 || l.Models[0].Packages[0].LastUsed == nil {
		t.Fatalf("ls: %s", out)
	}
	a := l.Models[0].Packages[0]
	if a.DirBytes != maintaintest.DuSB(t, c.a.PackageDir) ||
		a.BlobBytes != maintaintest.DuCB(t, c.BlobPath(c.weights), c.BlobPath(c.own)) || a.SharedBytes != int64(len(c.weights)) {
		t.Errorf("onnxa sizes %+v", a)
	}
	out, _, _ = runMaintCmd(t, newLsCmd, c.Config, "--sort", "size")
	if !strings.HasPrefix(out, "MODEL") || !strings.Contains(out, "onnxa") || !strings.Contains(out, "complete") || !strings.Contains(out, "2 model(s)") {
		t.Errorf("ls text:\n%s", out)
	}
	if _, code, _ := runMaintCmd(t, newLsCmd, c.Config, "--sort", "bogus"); code != 2 {
		t.Errorf("ls --sort bogus: exit %d", code)
	}
	if _, code, _ := runMaintCmd(t, newLsCmd, c.Config, "extra-arg"); code != 2 {
		t.Errorf("ls extra-arg: exit %d", code)
	}

	out, code, err = runMaintCmd(t, newDuCmd, c.Config, "--json")
	var u maintain.UsageReport
	if code != 0 || json.Unmarshal([]byte(out), &u) != nil {
		t.Fatalf("du: %v\n%s", err, out)
	}
	if u.TotalBytes != maintaintest.DuSB(t, c.Home()) || u.Blobs.Count != 2 || u.BlobsShared.Bytes != int64(len(c.weights)) {
		t.Errorf("du: %+v (du -sb %d)", u, maintaintest.DuSB(t, c.Home()))
	}
	if out, _, _ = runMaintCmd(t, newDuCmd, c.Config); !strings.Contains(out, "total") || !strings.Contains(out, "blobs") {
		t.Errorf("du text:\n%s", out)
	}

	out, code, err = runMaintCmd(t, newShowCmd, c.Config, "det", "--json")
	var d maintain.ModelDetail
	if code != 0 || json.Unmarshal([]byte(out), &d) != nil || len(d.Offline) != 1 {
		t.Fatalf("show alias: %v\n%s", err, out)
	}
	out, code, _ = runMaintCmd(t, newShowCmd, c.Config, "ws/det/3")
	if code != 0 || !strings.Contains(out, "package onnxa") || !strings.Contains(out, "-> blob "+maintaintest.MD5(c.weights)) ||
		!strings.Contains(out, "auto-resolution entries") || !strings.Contains(out, "offline record ws/det/3") {
		t.Errorf("show text:\n%s", out)
	}
	if _, code, err := runMaintCmd(t, newShowCmd, c.Config, "nobody/1"); code != 1 || !strings.Contains(err.Error(), "nobody/1") {
		t.Errorf("show unknown: exit %d %v", code, err)
	}
	if _, code, _ := runMaintCmd(t, newShowCmd, c.Config); code != 2 {
		t.Errorf("show without id: exit %d", code)
	}
	// A cache that does not exist lists as empty and is not created.
	empty := c.Config
	empty.Home = filepath.Join(t.TempDir(), "none")
	if out, code, _ := runMaintCmd(t, newLsCmd, empty, "--json"); code != 0 || !strings.Contains(out, `"models": []`) || pathExists(empty.Home) {
		t.Errorf("ls on a missing cache: exit %d\n%s", code, out)
	}
}

func pathExists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func TestCLIVerifyExitCodes(t *testing.T) {
	c := newCLICache(t)
	if _, code, err := runMaintCmd(t, newVerifyCmd, c.Config); code != 0 {
		t.Fatalf("clean cache: exit %d %v", code, err)
	}
	// Corrupt a blob in place.
	blob := c.BlobPath(c.own)
	if err := os.WriteFile(blob, maintaintest.Content("bad", len(c.own)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, code, err := runMaintCmd(t, newVerifyCmd, c.Config, "ws/det/3", "--full", "--json")
	var r maintain.VerifyReport
	if code != 1 || json.Unmarshal([]byte(out), &r) != nil || r.OK || r.Findings[0].Kind != maintain.FindBlobCorrupt {
		t.Fatalf("corrupt: exit %d %v\n%s", code, err, out)
	}
	out, code, _ = runMaintCmd(t, newVerifyCmd, c.Config, "--repair", "--full")
	if code != 1 || !strings.Contains(out, "REPAIRED blob-corrupt") || pathExists(blob) {
		t.Fatalf("repair: exit %d\n%s", code, out)
	}
	c.Materialize(c.pa) // the next load downloads it again
	if out, code, _ := runMaintCmd(t, newVerifyCmd, c.Config, "--full"); code != 0 || !strings.Contains(out, "all ok") {
		t.Errorf("after reload: exit %d\n%s", code, out)
	}
	if _, code, _ := runMaintCmd(t, newVerifyCmd, c.Config, "--bogus"); code != 2 {
		t.Errorf("bad flag: exit %d", code)
	}
	// The cache root is a file: an I/O error, exit 2.
	bad := c.Config
	bad.Home = filepath.Join(t.TempDir(), "file")
	maintaintest.WriteFile(t, bad.Home, []byte("x"))
	if _, code, _ := runMaintCmd(t, newVerifyCmd, bad); code != 2 {
		t.Errorf("unusable cache root: exit %d", code)
	}
}

func TestCLIGCAndPurge(t *testing.T) {
	c := newCLICache(t)
	orphan := maintaintest.Content("orphan", 12_345)
	if _, err := c.C.Blobs.Put(context.Background(), maintaintest.MD5(orphan), bytes.NewReader(orphan), int64(len(orphan))); err != nil {
		t.Fatal(err)
	}
	c.Age(2*time.Hour, c.BlobPath(orphan))
	out, code, err := runMaintCmd(t, newGcCmd, c.Config, "--dry-run", "--json")
	var g maintain.GCReport
	if code != 0 || json.Unmarshal([]byte(out), &g) != nil || g.ReclaimedBytes != int64(len(orphan)) || !pathExists(c.BlobPath(orphan)) {
		t.Fatalf("gc --dry-run: exit %d %v\n%s", code, err, out)
	}
	out, code, _ = runMaintCmd(t, newGcCmd, c.Config, "--grace", "30m")
	if code != 0 || pathExists(c.BlobPath(orphan)) || !strings.Contains(out, "removed blob") {
		t.Fatalf("gc: exit %d\n%s", code, out)
	}
	if _, code, _ := runMaintCmd(t, newGcCmd, c.Config, "--grace", "-1h"); code != 2 {
		t.Errorf("negative grace: exit %d", code)
	}

	want := maintaintest.DuSB(t, c.a.PackageDir) + maintaintest.DuSB(t, c.b.PackageDir) + int64(len(c.own))
	out, code, _ = runMaintCmd(t, newPurgeCmd, c.Config, "ws/det/3", "--dry-run", "--json")
	var p maintain.PurgeReport
	if code != 0 || json.Unmarshal([]byte(out), &p) != nil || !pathExists(c.a.PackageDir) {
		t.Fatalf("purge --dry-run: exit %d\n%s", code, out)
	}
	dryBytes := p.ReclaimedBytes
	out, code, _ = runMaintCmd(t, newPurgeCmd, c.Config, "ws/det/3", "--json")
	p = maintain.PurgeReport{}
	if code != 0 || json.Unmarshal([]byte(out), &p) != nil || p.ReclaimedBytes != dryBytes || pathExists(c.a.PackageDir) || pathExists(c.BlobPath(c.own)) ||
		!pathExists(c.BlobPath(c.weights)) {
		t.Fatalf("purge: exit %d (dry %d)\n%s", code, dryBytes, out)
	}
	// Entry and record bytes come on top of the package dirs and the blob.
	if p.ReclaimedBytes <= want {
		t.Errorf("reclaimed %d, want more than %d", p.ReclaimedBytes, want)
	}
	for _, args := range [][]string{{}, {"--package", "x"}, {"--bogus"}} {
		if _, code, _ := runMaintCmd(t, newPurgeCmd, c.Config, args...); code != 2 {
			t.Errorf("purge %v: exit %d", args, code)
		}
	}
	// Idempotent: what is already gone is reported as gone (exit 0).
	if out, code, _ := runMaintCmd(t, newPurgeCmd, c.Config, "nobody/1", "ws/det/3"); code != 0 ||
		!strings.Contains(out, "model nobody/1: already gone") || !strings.Contains(out, "model ws/det/3: already gone") {
		t.Errorf("purge of what is gone: exit %d\n%s", code, out)
	}
	if out, code, _ := runMaintCmd(t, newPurgeCmd, c.Config, "--all"); code != 0 || pathExists(c.BlobPath(c.weights)) {
		t.Errorf("purge --all: exit %d\n%s", code, out)
	}
	if out, code, _ := runMaintCmd(t, newVerifyCmd, c.Config); code != 0 {
		t.Errorf("verify after purge --all: exit %d\n%s", code, out)
	}
}
