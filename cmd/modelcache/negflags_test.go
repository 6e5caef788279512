package main

import (
	"reflect"
	"testing"

	"github.com/modelcache/modelcache/config"
	"github.com/spf13/pflag"
)

// pull and resolve read the negotiation flags through one set: the same
// arguments give the same request (comma lists split in both, the batch
// size parsed once).
func TestPullAndResolveShareNegotiationFlags(t *testing.T) {
	cfg := config.Default()
	args := []string{"--backend", "onnx,torch", "--backend", "trt", "--quantization", "fp16", "--batch-size", "1-8",
		"--device", "cuda:0", "--onnx-providers", "CUDAExecutionProvider, CPUExecutionProvider", "--package-id", "p1", "--allow-untrusted"}
	var lf loadFlags
	var rf resolveFlags
	pfs, rfs := pflag.NewFlagSet("pull", pflag.ContinueOnError), pflag.NewFlagSet("resolve", pflag.ContinueOnError)
	lf.register(pfs)
	rf.register(rfs)
	if err := pfs.Parse(args); err != nil {
		t.Fatal(err)
	}
	if err := rfs.Parse(args); err != nil {
		t.Fatal(err)
	}
	preq, pdev, err := lf.request(pfs, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	rreq, rdev, err := rf.request(rfs, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(preq, rreq) || pdev != rdev || !pdev {
		t.Fatalf("pull %+v (device set %v)\nresolve %+v (device set %v)", preq, pdev, rreq, rdev)
	}
	if !reflect.DeepEqual(preq.Backends, []string{"onnx", "torch", "trt"}) || len(preq.ONNXExecutionProviders) != 2 {
		t.Fatalf("comma lists not split: backends %v, providers %v", preq.Backends, preq.ONNXExecutionProviders)
	}
	if lo, hi, err := preq.BatchSize.Parse(); err != nil || lo != 1 || hi != 8 {
		t.Fatalf("batch size %v %v %v", lo, hi, err)
	}
}
