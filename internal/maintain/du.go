package maintain

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/modelcache/modelcache/internal/blobfs"
	"github.com/modelcache/modelcache/internal/fsx"
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
	// Problems: top-level directories that are not walked (symlinks).
	Problems []Problem `json:"problems,omitempty"`
}

// DiskUsage measures the cache in one walk of H through descriptors: every
// entry is fstatat'ed once, symlinks are counted as links (their text's
// length) and never followed, hard-linked files once. Blob users come from
// the links seen by the same walk.
func (m *Maintainer) DiskUsage(ctx context.Context) (*UsageReport, error) {
	du := &UsageReport{Home: m.home.Root, TempsByKind: map[TempKind]Usage{}}
	t, err := openTree(m.home)
	if err != nil {
		return nil, err
	}
	defer t.close()
	if t.root == nil {
		return du, nil
	}
	du.Problems = t.problems()
	w := &duWalk{t: t, du: du, seen: map[[2]uint64]bool{}, users: map[string]map[string]bool{}}
	self, err := t.root.Stat()
	if err != nil {
		return nil, err
	}
	w.count(".", self)
	ents, err := t.root.Entries()
	if err != nil {
		return nil, err
	}
	// Top-level entries: one goroutine each, models-cache split further
	// across model dirs.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(m.workers())
	for _, e := range ents {
		name := e.Name
		id, err := t.root.Lstat(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		w.count(name, id)
		if !id.Mode.IsDir() {
			continue
		}
		d, err := t.root.Sub(name)
		if err != nil {
			continue
		}
		if name != topModels {
			g.Go(func() error {
				defer d.Close()
				return w.walk(gctx, d, name)
			})
			continue
		}
		models, err := d.Entries()
		if err != nil {
			d.Close()
			return nil, err
		}
		for _, me := range models {
			mid, err := d.Lstat(me.Name)
			if err != nil {
				continue
			}
			w.count(topModels+"/"+me.Name, mid)
			if !mid.Mode.IsDir() {
				continue
			}
			g.Go(func() error {
				sub, err := d.Sub(me.Name)
				if err != nil {
					return nil
				}
				defer sub.Close()
				return w.walk(gctx, sub, topModels+"/"+me.Name)
			})
		}
		defer d.Close()
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("measure %s: %w", m.home.Root, err)
	}
	for md5, id := range w.blobs {
		switch users := len(w.users[md5]); {
		case users == 0:
			du.BlobsOrphaned.add(id.Size)
		case users == 1:
			du.BlobsUnique.add(id.Size)
		default:
			du.BlobsShared.add(id.Size)
			du.SavedBytes += id.Size * int64(users-1)
		}
	}
	return du, nil
}

// duWalk accumulates one DiskUsage walk (shared by its goroutines).
type duWalk struct {
	t  *tree
	mu sync.Mutex
	du *UsageReport
	// seen: hard-linked files (nlink > 1) already counted.
	seen map[[2]uint64]bool
	// blobs: regular blob files; users: per md5, the package dirs linking it.
	blobs map[string]fsx.FileID
	users map[string]map[string]bool
}

func (w *duWalk) count(rel string, id fsx.FileID) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if id.Nlink > 1 && !id.Mode.IsDir() {
		k := [2]uint64{id.Dev, id.Ino}
		if w.seen[k] {
			return
		}
		w.seen[k] = true
	}
	w.du.TotalBytes += id.Size
	w.du.classify(rel, id)
	if dir, name := filepath.Split(rel); dir == topBlobs+"/" && id.IsRegular() {
		if kind, md5 := blobfs.Classify(name); kind == blobfs.KindBlob {
			if w.blobs == nil {
				w.blobs = map[string]fsx.FileID{}
			}
			w.blobs[md5] = id
		}
	}
}

func (w *duWalk) link(pkgRel, md5 string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.users[md5] == nil {
		w.users[md5] = map[string]bool{}
	}
	w.users[md5][pkgRel] = true
}

// walk counts everything below d (at rel), never through a link.
func (w *duWalk) walk(ctx context.Context, d *fsx.Dir, rel string) error {
	ents, err := d.Entries()
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return err
		}
		r := rel + "/" + e.Name
		if e.IsSymlink() {
			text, err := d.Readlink(e.Name)
			if err != nil {
				continue
			}
			w.count(r, fsx.FileID{Mode: fs.ModeSymlink | 0o777, Size: int64(len(text)), Nlink: 1})
			if parts := strings.Split(r, "/"); parts[0] == topModels && len(parts) >= 4 {
				pkg := strings.Join(parts[:3], "/")
				if li := w.t.classifyLink(filepath.Dir(r), text); li.OurBlob {
					w.link(pkg, li.BlobMD5)
				}
			}
			continue
		}
		id, err := d.Lstat(e.Name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		w.count(r, id)
		if id.Mode.IsDir() {
			sub, err := d.Sub(e.Name)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return err
			}
			err = w.walk(ctx, sub, r)
			sub.Close()
			if err != nil {
				return err
			}
		}
	}
	return nil
}

func (du *UsageReport) temp(k TempKind, n int64) {
	du.Temps.add(n)
	u := du.TempsByKind[k]
	u.add(n)
	du.TempsByKind[k] = u
}

// classify puts one node (rel to H) into its category.
func (du *UsageReport) classify(rel string, id fsx.FileID) {
	n := id.Size
	if id.Mode.IsDir() {
		du.Directories.add(n)
		return
	}
	if rel == "." {
		du.Other.add(n)
		return
	}
	parts := strings.Split(rel, "/")
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
		case kind == blobfs.KindBlob && id.IsRegular():
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
