package maintain

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/modelcache/modelcache/internal/blobfs"
	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/layout"
	"github.com/modelcache/modelcache/internal/meta"
)

// Top-level directories of H that this package walks (on-disk contract §2).
const (
	topModels   = "models-cache"
	topBlobs    = blobfs.DirName
	topEntries  = "auto-resolution-cache"
	topRecords  = "offline-weights-registry"
	topMeta     = meta.DirName
	problemDirs = "unsafe-dir"
)

var storeDirs = []string{topModels, topBlobs, topEntries, topRecords, topMeta}

// tree is one opened H: a descriptor of the root (H as written: symlinks in
// H's own path are followed, on-disk contract §1.1) and of each top-level
// store directory opened with O_NOFOLLOW. Everything below is reached from
// these descriptors with openat/fstatat/readlinkat and never through a
// symlink, so no command reads, writes or deletes outside H whatever links
// are planted in it. A top-level directory that is a symlink (or not a
// directory) is recorded in unsafe and never opened.
type tree struct {
	home layout.Home
	// root is nil when H does not exist.
	root *fsx.Dir
	// realRoot is H with its symlinks resolved (link texts written by the
	// reference are realpaths).
	realRoot string
	dirs     map[string]*fsx.Dir
	unsafe   map[string]error
}

// openTree opens H and its store directories (missing ones stay nil).
func openTree(home layout.Home) (*tree, error) {
	t := &tree{home: home, dirs: map[string]*fsx.Dir{}, unsafe: map[string]error{}}
	root, err := fsx.OpenRoot(home.Root)
	if errors.Is(err, fs.ErrNotExist) {
		t.realRoot = filepath.Clean(home.Root)
		return t, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open cache root: %w", err)
	}
	t.root = root
	t.realRoot = realOr(home.Root)
	for _, name := range storeDirs {
		d, err := root.Sub(name)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case errors.Is(err, fsx.ErrSymlink) || errors.Is(err, fsx.ErrNotDir):
			t.unsafe[name] = t.unsafeError(name, err)
		case err != nil:
			t.close()
			return nil, err
		default:
			t.dirs[name] = d
		}
	}
	return t, nil
}

// UnsafeDirError reports a top-level directory of the cache that is a
// symlink or not a directory: nothing below it is read, written or served.
type UnsafeDirError struct {
	Path string
	// Target is the link text when it is a symlink.
	Target string
	Err    error
}

func (e *UnsafeDirError) Error() string {
	what := "is not a directory"
	if errors.Is(e.Err, fsx.ErrSymlink) {
		what = "is a symlink to " + e.Target
	}
	return fmt.Sprintf("%s %s: nothing below it is read, written or served (modelcache never follows a link out of the cache); "+
		"replace it by a real directory (move what it points to here) or remove it", e.Path, what)
}

func (e *UnsafeDirError) Unwrap() error { return e.Err }

func (t *tree) unsafeError(name string, err error) error {
	ue := &UnsafeDirError{Path: t.root.Join(name), Err: err}
	if errors.Is(err, fsx.ErrSymlink) {
		ue.Target, _ = t.root.Readlink(name)
	}
	return ue
}

// dir returns the opened top-level directory (nil when missing or unsafe).
func (t *tree) dir(name string) *fsx.Dir { return t.dirs[name] }

// problems lists the unsafe top-level directories.
func (t *tree) problems() []Problem {
	var out []Problem
	for _, name := range storeDirs {
		if err := t.unsafe[name]; err != nil {
			out = append(out, Problem{Kind: problemDirs, Path: t.path(name), Detail: err.Error()})
		}
	}
	return out
}

// path is H/<rel> as written.
func (t *tree) path(rel string) string {
	if rel == "" || rel == "." {
		return t.home.Root
	}
	root := t.home.Root
	if !strings.HasSuffix(root, "/") {
		root += "/"
	}
	return root + rel
}

func (t *tree) close() {
	for _, d := range t.dirs {
		d.Close()
	}
	t.dirs = map[string]*fsx.Dir{}
	if t.root != nil {
		t.root.Close()
		t.root = nil
	}
}

// openRel opens the directory H/<rel> one component at a time (never
// through a link).
func (t *tree) openRel(rel string) (*fsx.Dir, error) {
	top, rest, _ := strings.Cut(rel, "/")
	if err := t.unsafe[top]; err != nil {
		return nil, err
	}
	d := t.dirs[top]
	if d == nil {
		return nil, &fs.PathError{Op: "open directory", Path: t.path(rel), Err: fs.ErrNotExist}
	}
	if rest == "" {
		return nil, &fs.PathError{Op: "open directory", Path: t.path(rel), Err: fs.ErrInvalid}
	}
	return d.SubPath(rest)
}

// lstatRel stats H/<rel> without following a link at any component: a
// symlinked directory on the way gives *fsx.UnsafePathError.
func (t *tree) lstatRel(rel string) (fsx.FileID, error) {
	if rel == "" || rel == "." || t.root == nil {
		return fsx.FileID{}, &fs.PathError{Op: "lstat", Path: t.path(rel), Err: fs.ErrNotExist}
	}
	dir, base := filepath.Split(rel)
	if dir == "" {
		return t.root.Lstat(base)
	}
	d, err := t.openRel(strings.TrimSuffix(dir, "/"))
	if err != nil {
		return fsx.FileID{}, err
	}
	defer d.Close()
	return d.Lstat(base)
}

// openDirRel returns the directory H/<rel> (a top-level one is shared and
// not closed by the returned func).
func (t *tree) openDirRel(rel string) (*fsx.Dir, func(), error) {
	if !strings.Contains(rel, "/") {
		if err := t.unsafe[rel]; err != nil {
			return nil, nil, err
		}
		d := t.dir(rel)
		if d == nil {
			return nil, nil, &fs.PathError{Op: "open directory", Path: t.path(rel), Err: fs.ErrNotExist}
		}
		return d, func() {}, nil
	}
	d, err := t.openRel(rel)
	if err != nil {
		return nil, nil, err
	}
	return d, func() { d.Close() }, nil
}

// openHandleDir opens the directory holding handle in package p and
// returns it with the handle's base name.
func (t *tree) openHandleDir(p *pkgScan, handle string) (*fsx.Dir, func(), string, error) {
	dir, base := filepath.Split(handle)
	rel := p.Rel
	if dir != "" {
		rel += "/" + strings.TrimSuffix(dir, "/")
	}
	d, err := t.openRel(rel)
	if err != nil {
		return nil, nil, "", err
	}
	return d, func() { d.Close() }, base, nil
}
