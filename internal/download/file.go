package download

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/modelcache/modelcache/blobstore"
	"github.com/modelcache/modelcache/internal/blobfs"
	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/layout"
	"github.com/modelcache/modelcache/internal/meta"
)

// emptyMD5 is the MD5 of zero bytes: the only digest under which an empty
// download is accepted (download.md §2.6, lessons I3).
const emptyMD5 = "d41d8cd98f00b204e9800998ecf8427e"

// DownloadFile fetches it.URL to the plain file it.Dest (e.g. an unhashed
// package file). It takes no lock: the caller holds the handle's lock
// (materialize takes ".<basename>.lock"), and the directory of Dest must
// exist. If Dest already is a file it is returned untouched. The bytes go
// to a private temp ".<base>.partial-<token>" next to Dest (O_EXCL); only
// after the size check (and the MD5 check when it.MD5 is set), fsync, a
// no-replace rename and an fsync of the directory do they appear under
// Dest. Interrupted streams resume within the call; there is no journal
// (without an MD5 nothing could vouch for adopted bytes).
func (e *Engine) DownloadFile(ctx context.Context, it Item) (res Result, err error) {
	if it.Dest == "" {
		return Result{}, errors.New("download.DownloadFile: Dest is required")
	}
	if it.MD5 != "" {
		if err := blobstore.ValidateMD5(it.MD5); err != nil {
			return Result{}, err
		}
	}
	if r, ok, err := e.present(it); ok || err != nil {
		return r, err
	}
	if e.offline {
		return Result{}, &OfflineError{Name: it.label(), Missing: 1}
	}
	name, safe := it.label(), safeURL(it.URL)
	fp := e.track(name, it.MD5, it.Size)
	defer func() { fp.finish(err) }()

	dest, err := filepath.Abs(it.Dest)
	if err != nil {
		return Result{}, err
	}
	dir, base := filepath.Split(dest)
	pr := e.probeOnce(ctx, it)
	if err := ctx.Err(); err != nil {
		return Result{}, context.Cause(ctx)
	}
	size := pr.size
	if it.Size > 0 {
		if size >= 0 && size != it.Size {
			return Result{}, &SizeMismatchError{Name: name, URL: safe, Expected: it.Size, Actual: size}
		}
		if size < 0 {
			size, pr.ranges = it.Size, false
		}
	}
	fp.setTotal(size)
	token, err := newToken()
	if err != nil {
		return Result{}, err
	}
	tmp := filepath.Join(dir, "."+base+".partial-"+token)
	e.setToken(token, true)
	defer e.setToken(token, false)
	f, err := createExclusive(tmp)
	if err != nil {
		return Result{}, e.diskOrPlain(err, tmp)
	}
	published := false
	defer func() {
		if !published {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := e.preparePartial(f, size); err != nil {
		return Result{}, err
	}
	if err := e.checkItemSpace(it, dir, size); err != nil {
		return Result{}, err
	}
	j := &job{e: e, name: name, safe: safe, fp: fp, f: f, guard: spaceGuard{dir: dir}, url: pr.url, etag: pr.etag, size: size, ranges: pr.ranges,
		wantMD5: it.MD5 != "", wantSHA: true, refresh: it.Refresh}
	j.plan(nil)
	s, err := j.download(ctx)
	if err != nil {
		return Result{}, err
	}
	if s.size == 0 && it.MD5 == "" && pr.size != 0 {
		return Result{}, &SizeMismatchError{Name: name, URL: safe, Expected: -1, Actual: 0}
	}
	if it.MD5 != "" && s.md5 != it.MD5 {
		return Result{}, &DigestMismatchError{Name: name, URL: safe, Expected: it.MD5, Actual: s.md5, Size: s.size}
	}
	fp.setPhase(PhasePublishing)
	if err := f.Sync(); err != nil {
		return Result{}, e.diskOrPlain(err, tmp)
	}
	if err := f.Close(); err != nil {
		return Result{}, err
	}
	// Never through a symlink; a regular file that appeared meanwhile is a
	// concurrent writer's result, and wins.
	if fi, err := os.Lstat(dest); err == nil {
		if !fi.Mode().IsRegular() {
			return Result{}, &fsx.UnsafePathError{Op: "publish download", Path: dest, Kind: fsx.ErrNotRegular}
		}
		os.Remove(tmp)
		published = true
		return Result{Name: name, Path: dest, MD5: it.MD5, Size: fi.Size(), Shared: true}, nil
	}
	if err := fsx.RenameNoReplace(tmp, dest); err != nil {
		if errors.Is(err, fs.ErrExist) {
			os.Remove(tmp)
			published = true
			return Result{Name: name, Path: dest, MD5: it.MD5, Size: s.size, Shared: true}, nil
		}
		return Result{}, fmt.Errorf("publish %s: %w", dest, err)
	}
	published = true
	if err := fsx.SyncDir(dir); err != nil {
		return Result{}, err
	}
	e.removeStaleFilePartials(dir, base)
	fp.setPhase(PhaseDone)
	return Result{Name: name, Path: dest, MD5: it.MD5, SHA256: s.sha256, Size: s.size, NetworkBytes: fp.network.Load(),
		DirectBytes: j.diagnostics().direct}, nil
}

// removeStaleFilePartials removes temps of dest left by interrupted earlier
// downloads (".<base>.partial-<16 hex>") once dest is published: the caller
// holds the handle's lock, so no other process writes one now, and tokens
// of this engine's running downloads are spared.
func (e *Engine) removeStaleFilePartials(dir, base string) {
	paths, _ := filepath.Glob(filepath.Join(dir, "."+base+".partial-*"))
	prefix := "." + base + ".partial-"
	for _, p := range paths {
		tok := strings.TrimPrefix(filepath.Base(p), prefix)
		if len(tok) != 16 || strings.Trim(tok, "0123456789abcdef") != "" || e.tokenActive(tok) {
			continue
		}
		if fi, err := os.Lstat(p); err == nil && fi.Mode().IsRegular() {
			os.Remove(p)
		}
	}
}

func newToken() (string, error) { return fsx.HexToken() }

func createExclusive(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL|noFollowFlag, 0o666)
}

// writeVerifiedRecord appends the blob's verified record (package meta owns
// the format); dir is H/.meta/verified, as the engine names it.
func writeVerifiedRecord(dir, md5 string, r blobfs.PutResult) error {
	id := r.File
	if id.Ino == 0 {
		var err error
		if id, err = fsx.LstatID(r.Path); err != nil {
			return err
		}
	}
	home, err := layout.NewHome(filepath.Dir(filepath.Dir(dir)))
	if err != nil {
		return err
	}
	return meta.AppendVerified(home, false, meta.NewVerified(md5, r.SHA256, id, time.Now()))
}
