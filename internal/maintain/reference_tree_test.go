package maintain_test

import (
	"context"
	"testing"

	"github.com/modelcache/modelcache/internal/compat"
	"github.com/modelcache/modelcache/internal/maintain"
	"github.com/modelcache/modelcache/internal/maintain/maintaintest"
)

// The cache the reference wrote (python-cache/tree.json), rebuilt in a temp
// H: every package verifies, ls sees them complete, and GC finds nothing of
// the reference's to collect (every blob is linked or named).
func TestReferenceTreeIsClean(t *testing.T) {
	ctx := context.Background()
	tr := compat.LoadTree(t)
	home := t.TempDir()
	tr.Build(t, home)
	c := maintaintest.Open(t, home)
	r, err := c.M.Verify(ctx, maintain.VerifyOptions{Full: true})
	if err != nil || !r.OK || r.Packages == 0 || r.BlobsHashed == 0 {
		t.Fatalf("verify: %v %+v", err, r)
	}
	l, err := c.M.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range l.Models {
		for _, p := range m.Packages {
			if p.State != "complete" || p.BlobBytes == 0 && p.DirBytes == 0 {
				t.Errorf("%s/%s: %+v", m.ModelID, p.PackageID, p)
			}
		}
	}
	g, err := c.M.GC(ctx, maintain.GCOptions{DryRun: true})
	if err != nil || g.Blobs.Count != 0 || len(g.Problems) != 0 {
		t.Fatalf("gc: %v %+v", err, g)
	}
}
