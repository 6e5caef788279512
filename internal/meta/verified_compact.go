package meta

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"

	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/layout"
)

// LookupVerified returns the current record of one md5, reading the log
// from its end (a blob published a moment ago is found in the last block),
// then the legacy file.
func LookupVerified(home layout.Home, md5 string) (Verified, bool, error) {
	if !md5RE.MatchString(md5) {
		return Verified{}, false, fmt.Errorf("verified record: %q is not a lower-case hex MD5", md5)
	}
	d, err := Open(home)
	if d == nil || err != nil {
		return Verified{}, false, err
	}
	defer d.Close()
	v, found, forgotten, err := tailLookup(d, md5)
	if err != nil || found || forgotten {
		return v, found, err
	}
	ld, err := d.Sub(LegacyVerified)
	if err != nil {
		return Verified{}, false, nil
	}
	defer ld.Close()
	v, _, ok := readLegacyRecord(ld, md5)
	return v, ok && v.MD5 == md5, nil
}

// tailLookup scans the log backwards in blocks for the last line of md5.
func tailLookup(d *fsx.Dir, md5 string) (v Verified, found, forgotten bool, err error) {
	f, err := d.Open(VerifiedLog)
	if errors.Is(err, fs.ErrNotExist) {
		return v, false, false, nil
	}
	if err != nil {
		return v, false, false, err
	}
	defer f.Close()
	id, err := fsx.FstatID(f)
	if err != nil {
		return v, false, false, err
	}
	const block = 64 << 10
	needle := []byte(" " + md5 + " ")
	end := id.Size
	var tail []byte // the start of a line whose beginning lies in an earlier block
	for end > 0 {
		start := max(end-block, 0)
		buf := make([]byte, end-start, end-start+int64(len(tail)))
		if _, err := f.ReadAt(buf, start); err != nil && err != io.EOF {
			return v, false, false, err
		}
		buf = append(buf, tail...)
		cut := 0 // buf[cut:] holds whole lines (a torn one can only be last)
		if start > 0 {
			i := bytes.IndexByte(buf, '\n')
			if i < 0 {
				tail, end = buf, start
				continue
			}
			cut = i + 1
		}
		region := buf[cut:]
		for len(region) > 0 {
			if region[len(region)-1] != '\n' { // torn last line
				region = region[:bytes.LastIndexByte(region, '\n')+1]
				continue
			}
			body := region[:len(region)-1]
			j := bytes.LastIndexByte(body, '\n')
			line := body[j+1:]
			region = region[:j+1]
			if !bytes.Contains(line, needle) {
				continue
			}
			if rec, forget, ok := parseLine(line); ok && rec.MD5 == md5 {
				return rec, !forget, forget, nil
			}
		}
		tail = append([]byte(nil), buf[:cut]...)
		end = start
	}
	return v, false, false, nil
}

// CompactStats describes a compaction.
type CompactStats struct {
	// BytesBefore: the log plus the legacy files; BytesAfter: the new log.
	BytesBefore, BytesAfter int64
	// Kept records; Dropped: records of blobs keep rejected; Migrated:
	// legacy files folded in and removed.
	Kept, Dropped, Migrated int
}

// Reclaimed is BytesBefore - BytesAfter (never negative).
func (s CompactStats) Reclaimed() int64 { return max(s.BytesBefore-s.BytesAfter, 0) }

// CompactVerified rewrites the log with the latest record of every md5 for
// which keep returns true (nil keeps all), folds the legacy files in and
// removes them. With dryRun it only computes the stats. Appends racing with
// it wait on the log's lock and land in the new file.
func CompactVerified(ctx context.Context, home layout.Home, keep func(md5 string) bool, dryRun bool) (CompactStats, error) {
	var st CompactStats
	var d *fsx.Dir
	var err error
	if dryRun {
		d, err = Open(home)
	} else {
		d, err = Ensure(home)
	}
	if d == nil || err != nil {
		return st, err
	}
	defer d.Close()
	var data []byte
	f, err := d.Open(VerifiedLog)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return st, fmt.Errorf("verified records: %w", err)
	default:
		defer f.Close()
		if !dryRun {
			if err := lockExclusive(f); err != nil {
				return st, fmt.Errorf("verified records: lock: %w", err)
			}
		}
		if data, err = io.ReadAll(f); err != nil {
			return st, fmt.Errorf("verified records: %w", err)
		}
	}
	set := &VerifiedSet{recs: map[string]Verified{}, LogBytes: int64(len(data))}
	forgotten := map[string]bool{}
	applyLog(data, set.recs, forgotten)
	if err := readLegacy(ctx, d, set, forgotten); err != nil {
		return st, err
	}
	st.BytesBefore = set.LogBytes + set.LegacyBytes
	st.Migrated = set.Legacy
	var out bytes.Buffer
	for _, m := range sortedKeys(set.recs) {
		if keep != nil && !keep(m) {
			st.Dropped++
			continue
		}
		l, err := set.recs[m].line()
		if err != nil {
			continue
		}
		out.Write(l)
		st.Kept++
	}
	st.BytesAfter = int64(out.Len())
	if dryRun {
		return st, nil
	}
	if st.BytesAfter == set.LogBytes && set.Legacy == 0 {
		return st, nil // already compact
	}
	if err := d.WriteFileAtomic(VerifiedLog, out.Bytes(), FilePerm); err != nil {
		return st, fmt.Errorf("verified records: %w", err)
	}
	if set.Legacy > 0 {
		removeLegacy(d)
	}
	return st, nil
}

// removeLegacy deletes the legacy record files (regular files with md5
// names only) and the directory when it is empty.
func removeLegacy(meta *fsx.Dir) {
	d, err := meta.Sub(LegacyVerified)
	if err != nil {
		return
	}
	ents, err := d.Entries()
	if err == nil {
		for _, e := range ents {
			if md5RE.MatchString(e.Name) && e.IsRegular() {
				d.Remove(e.Name)
			}
		}
	}
	d.Close()
	meta.RemoveDir(LegacyVerified) // fails (and stays) when not empty
}

func sortedKeys(m map[string]Verified) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
