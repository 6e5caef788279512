package offlinereg

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/modelcache/modelcache/metadata"
)

const (
	envHelperRoot   = "OFFLINEREG_HELPER_ROOT"
	envHelperPrefix = "OFFLINEREG_HELPER_PREFIX"
	envHelperStart  = "OFFLINEREG_HELPER_START_UNIX_NANO"
	helperLoads     = 20
)

func loadMeta(pkgID string) *metadata.ModelMetadata {
	md5 := "0123456789abcdef0123456789abcdef"
	return &metadata.ModelMetadata{
		ModelID:           "race/model/1",
		ModelArchitecture: "yolov8",
		Packages: []metadata.ModelPackage{{
			PackageID:    pkgID,
			Backend:      metadata.BackendONNX,
			Quantization: metadata.QuantizationFP32,
			Artifacts:    []metadata.Artifact{{FileHandle: "weights.onnx", MD5Hash: &md5}},
		}},
	}
}

// helperRecorder is the body of the child processes started by
// TestConcurrentProcessesLoseNoWrite (the same test, re-run with the env set).
func helperRecorder(t *testing.T, root string) {
	prefix := os.Getenv(envHelperPrefix)
	start, _ := strconv.ParseInt(os.Getenv(envHelperStart), 10, 64)
	time.Sleep(time.Until(time.Unix(0, start)))
	reg, logs := newTestRegistry(t, root)
	for i := 0; i < helperLoads; i++ {
		id := fmt.Sprintf("%s%d", prefix, i)
		ok, err := reg.RecordSuccessfulLoad(context.Background(), loadMeta(id), "alias-"+prefix, id, SourceWarmup, time.Now())
		if err != nil || !ok {
			t.Fatalf("load %s: %v %v\n%s", id, ok, err, logs)
		}
	}
}

// TestConcurrentProcessesLoseNoWrite runs two real processes that record
// different packages into one record at the same time: the flock-protected
// read-merge-write must keep every package, alias and proof of both.
func TestConcurrentProcessesLoseNoWrite(t *testing.T) {
	if root := os.Getenv(envHelperRoot); root != "" {
		helperRecorder(t, root)
		return
	}
	root := t.TempDir()
	start := time.Now().Add(300 * time.Millisecond).UnixNano()
	prefixes := []string{"pa", "pb"}
	var wg sync.WaitGroup
	errs := make([]error, len(prefixes))
	outs := make([][]byte, len(prefixes))
	for i, p := range prefixes {
		cmd := exec.Command(os.Args[0], "-test.run=^TestConcurrentProcessesLoseNoWrite$", "-test.count=1")
		cmd.Env = append(os.Environ(), envHelperRoot+"="+root, envHelperPrefix+"="+p, envHelperStart+"="+strconv.FormatInt(start, 10))
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i], errs[i] = cmd.CombinedOutput()
		}()
	}
	wg.Wait()
	for i := range prefixes {
		if errs[i] != nil {
			t.Fatalf("helper %s: %v\n%s", prefixes[i], errs[i], outs[i])
		}
	}

	reg, _ := newTestRegistry(t, root)
	ctx := context.Background()
	m, err := reg.LoadModelMetadata(ctx, "race/model/1")
	if err != nil || m == nil {
		t.Fatalf("record unreadable: %v", err)
	}
	have := map[string]bool{}
	for _, p := range m.Packages {
		have[p.PackageID] = true
	}
	var lost []string
	for _, p := range prefixes {
		for i := 0; i < helperLoads; i++ {
			if id := fmt.Sprintf("%s%d", p, i); !have[id] {
				lost = append(lost, id)
			}
		}
	}
	if len(lost) > 0 || len(have) != len(prefixes)*helperLoads {
		t.Fatalf("lost writes: %v (have %d packages)", lost, len(have))
	}
	list, err := reg.List(ctx)
	if err != nil || len(list) != 1 {
		t.Fatalf("list: %v %v", list, err)
	}
	if len(list[0].Proven) != len(prefixes)*helperLoads {
		t.Errorf("proven entries: %d", len(list[0].Proven))
	}
	if got := list[0].RequestedAliases; len(got) != 2 || got[0] != "alias-pa" || got[1] != "alias-pb" {
		t.Errorf("aliases %v", got)
	}
}
