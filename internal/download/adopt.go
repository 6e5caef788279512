package download

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/modelcache/modelcache/internal/blobfs"
	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/journal"
)

// adoption is a dead owner's partial claimed by us.
type adoption struct {
	f      *os.File
	token  string
	ranges []journal.Range
	algo   string
}

// adopt looks for partials of md5 left by dead owners (download.md §3 rule
// 3), claims the most advanced one and re-verifies its recorded ranges.
// Partials of live owners are never touched.
func (e *Engine) adopt(ctx context.Context, md5 string, size int64, etag, safe string) (*adoption, error) {
	dir := e.blobs.Dir()
	paths, _ := filepath.Glob(filepath.Join(dir, "."+md5+".partial-*.json"))
	type cand struct {
		jpath, data string
		j           *journal.File
	}
	var cands []cand
	for _, jp := range paths {
		if k, m := blobfs.Classify(filepath.Base(jp)); k != blobfs.KindJournal || m != md5 {
			continue
		}
		jf, err := journal.Read(jp)
		if err != nil {
			e.log.Debug("ignoring unreadable resume journal", "journal", jp, "err", err)
			continue
		}
		if e.ownerAlive(jf) {
			continue
		}
		data := jp[:len(jp)-len(".json")]
		fi, err := os.Lstat(data)
		if errors.Is(err, fs.ErrNotExist) {
			removeJournal(jp) // orphan: its data was published or claimed
			continue
		}
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if jf.MD5 != md5 || jf.Size != size || (jf.ETag != "" && etag != "" && jf.ETag != etag) {
			e.log.Info("discarding a stale partial (size or ETag changed)", "blob", md5, "partial", data)
			os.Remove(data)
			removeJournal(jp)
			continue
		}
		cands = append(cands, cand{jp, data, jf})
	}
	if len(cands) == 0 {
		return nil, nil
	}
	sort.Slice(cands, func(a, b int) bool { return cands[a].j.DoneBytes() > cands[b].j.DoneBytes() })
	for _, c := range cands[1:] {
		os.Remove(c.data)
		removeJournal(c.jpath)
	}
	best := cands[0]
	token, err := newToken()
	if err != nil {
		return nil, err
	}
	e.setToken(token, true)
	claimed := false
	defer func() {
		if !claimed {
			e.setToken(token, false)
		}
	}()
	data := filepath.Join(dir, "."+md5+".partial-"+token)
	jpath := data + ".json"
	// Journal first, then the rename, then the old journal: a crash between
	// any two steps leaves either the old pair or the new pair usable.
	nj := *best.j
	nj.Owner = e.owner(token)
	if err := journal.Write(jpath, &nj); err != nil {
		return nil, nil
	}
	// A dead process on this host holds no descriptor of the old file, so
	// renaming it is as safe as copying it. A partial from another host may
	// still have a live (zombie) writer: copy it into our own file instead.
	var f *os.File
	if best.j.Owner.Host == e.self.Host {
		if err := renameNoReplace(best.data, data); err != nil {
			os.Remove(jpath)
			return nil, nil
		}
		f, err = openPartial(data)
	} else {
		f, err = copyPartial(ctx, best.data, data)
	}
	if err != nil {
		os.Remove(data)
		os.Remove(jpath)
		return nil, nil
	}
	removeJournal(best.jpath)
	if best.j.Owner.Host != e.self.Host {
		os.Remove(best.data)
	}
	// Re-hash every recorded range; a mismatch is fetched again.
	algo := best.j.Algo()
	bp := e.getBuf()
	defer e.putBuf(bp)
	var good []journal.Range
	for _, r := range best.j.RangesDone {
		if err := ctx.Err(); err != nil {
			f.Close()
			return nil, context.Cause(ctx)
		}
		h, err := journal.HashFileRange(f, r.First, r.Last, algo, *bp)
		if err != nil || h != r.Hash {
			e.log.Warn("adopted range does not match its recorded hash; fetching it again", "blob", md5,
				"first", r.First, "last", r.Last)
			continue
		}
		good = append(good, r)
	}
	claimed = true
	return &adoption{f: f, token: token, ranges: good, algo: algo}, nil
}

// removeSuperseded removes what a published blob supersedes (issue 11
// item 8): partials and journals of md5 whose owners are dead (a process
// killed between its rename and its journal delete, or killed early and
// then outrun), the temp files of journal rewrites they were killed in,
// and, where the blob lock is reliable, partials without a journal that no
// download of this engine owns: while we hold the lock no other process
// writes one. Called with the blob lock held, once the blob exists.
func (e *Engine) removeSuperseded(md5 string) {
	dir := e.blobs.Dir()
	paths, _ := filepath.Glob(filepath.Join(dir, ".*"+md5+".partial-*"))
	journals := map[string]bool{} // journal base names that stay
	for _, p := range paths {
		base := filepath.Base(p)
		if k, m := blobfs.Classify(base); k != blobfs.KindJournal || m != md5 {
			continue
		}
		if jf, err := journal.Read(p); err == nil && e.ownerAlive(jf) {
			journals[base] = true
			continue
		}
		os.Remove(strings.TrimSuffix(p, ".json"))
		removeJournal(p)
	}
	for _, p := range paths {
		base := filepath.Base(p)
		k, m := blobfs.Classify(base)
		if m != md5 {
			continue
		}
		switch k {
		case blobfs.KindPartial:
			if journals[base+".json"] || e.tokenActive(partialToken(base)) || e.unreliableLocks {
				continue
			}
			if _, err := os.Lstat(p + ".json"); err == nil {
				continue // a journal appeared meanwhile: judged next time
			}
		case blobfs.KindAtomicTemp:
			final, _ := fsx.ParseAtomicTempName(base)
			if journals[final] || e.tokenActive(partialToken(strings.TrimSuffix(final, ".json"))) {
				continue
			}
		default:
			continue
		}
		if err := os.Remove(p); err == nil {
			e.log.Debug("removed a leftover of an interrupted download", "blob", md5, "file", base)
		}
	}
}

// removeJournal removes a dead owner's journal and the temp files of an
// atomic rewrite it was killed in (".<journal>.<rand8>.tmp").
func removeJournal(jp string) {
	os.Remove(jp)
	dir, base := filepath.Split(jp)
	tmps, _ := filepath.Glob(filepath.Join(dir, "."+base+".*.tmp"))
	for _, t := range tmps {
		if final, ok := fsx.ParseAtomicTempName(filepath.Base(t)); ok && final == base {
			os.Remove(t)
		}
	}
}
