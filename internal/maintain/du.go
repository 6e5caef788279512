package maintain

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/modelcache/modelcache/internal/blobfs"
)

// Usage is a number of files and their apparent bytes.
type Usage struct {
	Count int64 `json:"count"`
	Bytes int64 `json:"bytes"`
}

func (u *Usage) add(n int64) { u.Count++; u.Bytes += n }

// UsageReport is the result of DiskUsage: every byte under H in exactly one
// category, so that the categories add up to TotalBytes, which equals
// `du -sb H` (apparent sizes, symlinks not followed, hard links once).
type UsageReport struct {
	Home       string `json:"home"`
	TotalBytes int64  `json:"total_bytes"`
	// Blobs are the blob files of shared-blobs, split below by how many
	// package dirs link to them.
	Blobs         Usage `json:"blobs"`
	BlobsUnique   Usage `json:"blobs_unique"`
	BlobsShared   Usage `json:"blobs_shared"`
	BlobsOrphaned Usage `json:"blobs_orphaned"`
	// SavedBytes: what sharing saves (each shared blob's size times its
	// extra users).
	SavedBytes int64 `json:"saved_bytes"`
	// PackageFiles: files and links inside package dirs (links count as their
	// own length, not the blob's).
	PackageFiles Usage `json:"package_files"`
	Entries      Usage `json:"auto_resolution_entries"`
	Records      Usage `json:"offline_records"`
	// Temps: partials, journals, temp files, corrupt blobs moved aside.
	Temps       Usage              `json:"temps"`
	TempsByKind map[TempKind]Usage `json:"temps_by_kind"`
	Locks       Usage              `json:"locks"`
	Meta        Usage              `json:"meta"`
	Directories Usage              `json:"directories"`
	Other       Usage              `json:"other"`
}

// DiskUsage measures the cache.
func (m *Maintainer) DiskUsage(ctx context.Context) (*UsageReport, error) {
	inv, err := m.scan(ctx)
	if err != nil {
		return nil, err
	}
	du := &UsageReport{Home: m.home.Root, TempsByKind: map[TempKind]Usage{}}
	root := m.home.Root
	fi, err := os.Stat(root) // H itself may be a symlink: it is used as written
	if errors.Is(err, fs.ErrNotExist) {
		return du, nil
	}
	if err != nil {
		return nil, err
	}
	seen := map[[2]uint64]bool{}
	count := func(rel string, fi fs.FileInfo) {
		if dev, ino, ok := inodeOf(fi); ok {
			k := [2]uint64{dev, ino}
			if seen[k] {
				return
			}
			seen[k] = true
		}
		du.TotalBytes += fi.Size()
		du.classify(rel, fi)
	}
	count(".", fi)
	ents, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		top := filepath.Join(root, e.Name())
		err := filepath.WalkDir(top, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return nil
				}
				return err
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			fi, err := d.Info()
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			count(rel, fi)
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("measure %s: %w", top, err)
		}
	}
	for md5, b := range inv.Blobs {
		switch users := len(inv.Users[md5]); {
		case users == 0:
			du.BlobsOrphaned.add(b.Size)
		case users == 1:
			du.BlobsUnique.add(b.Size)
		default:
			du.BlobsShared.add(b.Size)
			du.SavedBytes += b.Size * int64(users-1)
		}
	}
	return du, nil
}

func (du *UsageReport) temp(k TempKind, n int64) {
	du.Temps.add(n)
	u := du.TempsByKind[k]
	u.add(n)
	du.TempsByKind[k] = u
}

// classify puts one node (rel to H) into its category.
func (du *UsageReport) classify(rel string, fi fs.FileInfo) {
	n := fi.Size()
	if fi.IsDir() {
		du.Directories.add(n)
		return
	}
	parts := strings.Split(rel, string(filepath.Separator))
	name := parts[len(parts)-1]
	top := parts[0]
	if top == ".meta" && name == "gc.lock" && len(parts) == 2 {
		du.Locks.add(n)
		return
	}
	switch top {
	case blobfs.DirName:
		if len(parts) != 2 {
			du.Other.add(n)
			return
		}
		kind, _ := blobfs.Classify(name)
		switch {
		case kind == blobfs.KindBlob && fi.Mode().IsRegular():
			du.Blobs.add(n)
		case kind == blobfs.KindLock:
			du.Locks.add(n)
		case blobTempKind(kind) != "":
			du.temp(blobTempKind(kind), n)
		default:
			du.Other.add(n)
		}
		return
	case "models-cache", "auto-resolution-cache", "offline-weights-registry", ".meta":
	default:
		du.Other.add(n)
		return
	}
	if k, _ := classifyTemp(name); k != "" {
		du.temp(k, n)
		return
	}
	if lockNameRE.MatchString(name) {
		du.Locks.add(n)
		return
	}
	switch top {
	case "models-cache":
		if len(parts) >= 4 {
			du.PackageFiles.add(n)
		} else {
			du.Other.add(n)
		}
	case "auto-resolution-cache":
		if len(parts) == 2 && entryRE.MatchString(name) {
			du.Entries.add(n)
		} else {
			du.Other.add(n)
		}
	case "offline-weights-registry":
		if len(parts) == 2 && strings.HasSuffix(name, ".json") && !strings.HasPrefix(name, ".") {
			du.Records.add(n)
		} else {
			du.Other.add(n)
		}
	default:
		du.Meta.add(n)
	}
}
