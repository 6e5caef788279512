package main

import (
	"bufio"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/internal/cache"
	"github.com/modelcache/modelcache/internal/testsvc"
)

// noNetwork prefixes a command so that it runs in a new network namespace
// without interfaces: every dial fails, whatever the program does.
func noNetwork(t *testing.T, args ...string) []string {
	t.Helper()
	if out, err := exec.Command("unshare", "-n", "true").CombinedOutput(); err != nil {
		t.Fatalf("unshare -n (a network namespace for the no-network runs) is not available: %v %s", err, out)
	}
	return append([]string{"unshare", "-n"}, args...)
}

// runIn runs argv with the environment of e (PATH, INFERENCE_HOME and its env).
func (e *e2eEnv) runArgv(argv []string, extraEnv ...string) (string, string, int) {
	e.t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(append([]string{"PATH=" + os.Getenv("PATH"), "INFERENCE_HOME=" + e.home}, e.env...), extraEnv...)
	var so, se strings.Builder
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		e.t.Fatal(err)
	}
	return so.String(), se.String(), cmd.ProcessState.ExitCode()
}

// warmA pulls the models into a home with warm-up records, from a registry
// process, and returns the pulls.
func warmA(t *testing.T, bin string, ids ...string) (*e2eEnv, map[string]packageJSON) {
	t.Helper()
	regRoot := filepath.Join(t.TempDir(), "registry")
	copyDir(t, "../../examples/registry", regRoot)
	url := startRegistry(t, bin, regRoot)
	a := &e2eEnv{t: t, bin: bin, home: filepath.Join(t.TempDir(), "a"), env: []string{"ROBOFLOW_API_HOST=" + url, "ROBOFLOW_API_KEY=key-a"}}
	pulled := map[string]packageJSON{}
	for _, id := range ids {
		p, _ := a.pull([]string{"OFFLINE_MODE_WARM_UP=true"}, id)
		pulled[id] = p
	}
	return a, pulled
}

// offlinePull runs `OFFLINE_MODE=true pull` in home, in a namespace with no network.
func offlinePull(t *testing.T, e *e2eEnv, id string) packageJSON {
	t.Helper()
	out, errOut, code := e.runArgv(noNetwork(t, e.bin, "pull", "--json", "--runtime", "../../examples/runtimes/cpu-onnx.json", "--log-level", "warn", id), "OFFLINE_MODE=true")
	if code != 0 {
		t.Fatalf("OFFLINE_MODE=true pull %s: exit %d: %s", id, code, errOut)
	}
	var p packageJSON
	if err := json.Unmarshal([]byte(out), &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func sameFiles(t *testing.T, a, b packageJSON) {
	t.Helper()
	if a.PackageID != b.PackageID || len(a.Files) != len(b.Files) {
		t.Fatalf("A loaded %s %v, B %s %v", a.PackageID, a.Files, b.PackageID, b.Files)
	}
	for h, fa := range a.Files {
		ba, _ := os.ReadFile(fa)
		bb, err := os.ReadFile(b.Files[h])
		if err != nil || string(ba) != string(bb) {
			t.Errorf("%s: file %s differs (%v)", a.PackageID, h, err)
		}
	}
	ma, _ := os.ReadFile(filepath.Join(a.Dir, "model_config.json"))
	mb, _ := os.ReadFile(filepath.Join(b.Dir, "model_config.json"))
	if string(ma) != string(mb) {
		t.Errorf("%s: manifests differ:\nA %s\nB %s", a.PackageID, ma, mb)
	}
}

// The air-gap workflow through the real binary: pull on A → export →
// import into an empty B in a namespace with no network → OFFLINE_MODE
// pulls of every exported model (no network either) load the same package
// with the same bytes and manifest; verify --full is clean.
func TestAirGapRoundTripBinary(t *testing.T) {
	bin := e2eBinary(t)
	ids := []string{"parcel-det", "acme-ws/fruit-classifier/2"}
	a, pulled := warmA(t, bin, ids...)
	bundle := filepath.Join(t.TempDir(), "bundle.tar")
	if _, errOut, code := a.run(append([]string{"export", "-o", bundle, "--runtime", "../../examples/runtimes/cpu-onnx.json"}, ids...)...); code != 0 {
		t.Fatalf("export: exit %d: %s", code, errOut)
	}
	again := filepath.Join(t.TempDir(), "again.tar")
	a.run(append([]string{"export", "-o", again, "--runtime", "../../examples/runtimes/cpu-onnx.json"}, ids...)...)
	if x, y := readAll(t, bundle), readAll(t, again); x != y {
		t.Error("two exports of the same cache differ")
	}

	b := &e2eEnv{t: t, bin: bin, home: filepath.Join(t.TempDir(), "b")}
	if out, errOut, code := b.runArgv(noNetwork(t, bin, "import", bundle)); code != 0 {
		t.Fatalf("import without network: exit %d: %s %s", code, out, errOut)
	}
	for _, id := range ids {
		sameFiles(t, pulled[id], offlinePull(t, b, id))
	}
	if out, errOut, code := b.run("verify", "--full"); code != 0 {
		t.Fatalf("verify --full of B: exit %d\n%s%s", code, out, errOut)
	}
	// Import refuses to run offline (it writes) with exit 2.
	if _, _, code := b.runArgv([]string{bin, "import", bundle}, "OFFLINE_MODE=true"); code != 2 {
		t.Errorf("import under OFFLINE_MODE exited %d, want 2", code)
	}
}

func readAll(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Through a real registry: push from A, pull oci:// into an empty C, same
// files and manifest, verify clean, and an OFFLINE_MODE pull finds it.
func TestPushPullOCIBinary(t *testing.T) {
	bin := e2eBinary(t)
	a, pulled := warmA(t, bin, "parcel-det")
	reg := testsvc.StartRegistry(t)
	ref := "oci://" + reg.Host + "/models/parcel-det:7"
	docker := []string{"DOCKER_CONFIG=" + t.TempDir()}
	if out, errOut, code := a.runArgv([]string{bin, "push", "parcel-det", ref, "--plain-http", "--runtime", "../../examples/runtimes/cpu-onnx.json"}, docker...); code != 0 {
		t.Fatalf("push: exit %d: %s %s", code, out, errOut)
	}
	c := &e2eEnv{t: t, bin: bin, home: filepath.Join(t.TempDir(), "c")}
	if out, errOut, code := c.runArgv([]string{bin, "pull", ref, "--plain-http"}, docker...); code != 0 {
		t.Fatalf("pull oci: exit %d: %s %s", code, out, errOut)
	}
	sameFiles(t, pulled["parcel-det"], offlinePull(t, c, "parcel-det"))
	if out, errOut, code := c.run("verify", "--full"); code != 0 {
		t.Fatalf("verify --full of C: exit %d\n%s%s", code, out, errOut)
	}
	if _, errOut, code := c.runArgv([]string{bin, "pull", ref, "--plain-http"}, "OFFLINE_MODE=true"); code != 2 || !strings.Contains(errOut, "OFFLINE_MODE") {
		t.Errorf("pull oci:// under OFFLINE_MODE: exit %d: %s", code, errOut)
	}
	if _, _, code := c.run("pull", "oci://no-tag-here", "--plain-http"); code != 2 {
		t.Errorf("a reference without repository/tag exited %d, want 2", code)
	}
}

// An import killed at each step it reports leaves nothing half-published:
// every package with a manifest verifies, every record names complete
// packages, every blob holds its MD5's bytes; an OFFLINE_MODE pull either
// works or says there is no record; running the import again completes it.
func TestImportKilledAtEveryStep(t *testing.T) {
	bin := e2eBinary(t)
	ids := []string{"parcel-det", "acme-ws/fruit-classifier/2"}
	a, pulled := warmA(t, bin, ids...)
	bundle := filepath.Join(t.TempDir(), "bundle.tar")
	if _, errOut, code := a.run(append([]string{"export", "-o", bundle, "--runtime", "../../examples/runtimes/cpu-onnx.json"}, ids...)...); code != 0 {
		t.Fatalf("export: exit %d: %s", code, errOut)
	}
	// A full run counts the steps.
	full := &e2eEnv{t: t, bin: bin, home: filepath.Join(t.TempDir(), "full")}
	_, errOut, code := full.run("import", "--progress-json", bundle)
	if code != 0 {
		t.Fatalf("import: %d %s", code, errOut)
	}
	steps := strings.Count(errOut, `{"event":`)
	if steps < 4 {
		t.Fatalf("only %d progress events:\n%s", steps, errOut)
	}
	for k := 1; k <= steps; k++ {
		home := filepath.Join(t.TempDir(), "b")
		cmd := exec.Command(bin, "import", "--progress-json", "--concurrency", "1", bundle)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "INFERENCE_HOME=" + home}
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(stderr)
		seen := 0
		var last string
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), `{"event":`) {
				seen++
				last = sc.Text()
				if seen == k {
					cmd.Process.Signal(syscall.SIGKILL)
					break
				}
			}
		}
		go func() {
			for sc.Scan() {
			}
		}()
		cmd.Wait()
		t.Logf("killed after event %d: %s", k, last)
		checkNothingHalfPublished(t, home)
		b := &e2eEnv{t: t, bin: bin, home: home}
		for _, id := range ids {
			_, errOut, code := b.runArgv([]string{bin, "pull", "--runtime", "../../examples/runtimes/cpu-onnx.json", id}, "OFFLINE_MODE=true")
			if code != 0 && !strings.Contains(errOut, "No offline-weights record") && !strings.Contains(errOut, "no offline-weights record") {
				t.Errorf("after a kill at event %d, OFFLINE_MODE pull %s: exit %d: %s", k, id, code, errOut)
			}
		}
		if _, errOut, code := b.run("import", bundle); code != 0 {
			t.Fatalf("re-import after a kill at event %d: exit %d: %s", k, code, errOut)
		}
		for _, id := range ids {
			sameFiles(t, pulled[id], offlinePull(t, b, id))
		}
		if out, errOut, code := b.run("verify", "--full"); code != 0 {
			t.Fatalf("verify --full after re-import (kill at %d): exit %d\n%s%s", k, code, out, errOut)
		}
	}
}

func checkNothingHalfPublished(t *testing.T, home string) {
	t.Helper()
	cfg := config.Default()
	cfg.Home = home
	c, err := cache.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	infos, err := c.ScanPackages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	complete := map[string]bool{}
	for _, p := range infos {
		if p.State == cache.StateComplete {
			if _, err := c.Packages.VerifyPackage(ctx, p.Dir); err != nil {
				t.Errorf("published package %s does not verify: %v", p.Dir, err)
			}
			complete[*p.Manifest.CanonicalModelID+"/"+p.PackageID] = true
		}
	}
	recs, err := c.Registry.Records(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, rec := range recs {
		id, _ := rec.CanonicalModelID()
		md, err := rec.ModelMetadata(nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range md.Packages {
			if !complete[id+"/"+p.PackageID] {
				t.Errorf("record of %s names package %s before it was complete", id, p.PackageID)
			}
		}
	}
	entries, _ := os.ReadDir(filepath.Join(home, "shared-blobs"))
	for _, e := range entries {
		if len(e.Name()) != 32 || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(home, "shared-blobs", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if sum := md5.Sum(b); hex.EncodeToString(sum[:]) != e.Name() {
			t.Errorf("published blob %s holds other bytes", e.Name())
		}
	}
}

// Export chooses without network: in OFFLINE_MODE, with no offline record
// and an ONNX package whose rebuilt metadata negotiation rejects, it falls
// back to the package an earlier pull loaded (its auto-resolution entry),
// and warns that the far side will lack the ONNX details.
func TestExportChoosesWhatAnEarlierPullLoaded(t *testing.T) {
	bin := e2eBinary(t)
	regRoot := filepath.Join(t.TempDir(), "registry")
	copyDir(t, "../../examples/registry", regRoot)
	url := startRegistry(t, bin, regRoot)
	a := &e2eEnv{t: t, bin: bin, home: filepath.Join(t.TempDir(), "a"), env: []string{"ROBOFLOW_API_HOST=" + url}}
	p, _ := a.pull(nil, "acme-ws/fruit-classifier/2")
	out, errOut, code := a.runArgv([]string{bin, "export", "acme-ws/fruit-classifier/2", "--json", "-o", filepath.Join(t.TempDir(), "b.tar"),
		"--runtime", "../../examples/runtimes/cpu-onnx.json"}, "OFFLINE_MODE=true")
	if code != 0 {
		t.Fatalf("export: exit %d: %s", code, errOut)
	}
	var sum exportSummary
	if err := json.Unmarshal([]byte(out), &sum); err != nil || len(sum.Packages) != 1 || sum.Packages[0].PackageID != p.PackageID {
		t.Fatalf("exported %+v (%v), the earlier pull loaded %s", sum, err, p.PackageID)
	}
	if sum.Packages[0].MetadataSource != "package-manifest" || !strings.Contains(errOut, "lacks the onnx details") {
		t.Errorf("no warning about rebuilt metadata: %s", errOut)
	}
}
