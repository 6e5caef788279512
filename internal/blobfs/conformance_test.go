package blobfs_test

import (
	"testing"

	"github.com/modelcache/modelcache/blobstore"
	"github.com/modelcache/modelcache/blobstore/blobstoretest"
	"github.com/modelcache/modelcache/internal/blobfs"
)

func TestConformance(t *testing.T) {
	blobstoretest.Run(t, func(t *testing.T) blobstore.Store {
		s, err := blobfs.Open(t.TempDir(), nil)
		if err != nil {
			t.Fatal(err)
		}
		return s.Seam()
	}, blobstoretest.Options{})
}
