package meta

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/layout"
	"github.com/modelcache/modelcache/internal/offlinereg"
)

// Verified records that the blob shared-blobs/<MD5> hashed to its name while
// its identity was (Size, MtimeNS, Ino): an incremental verify skips a blob
// whose identity is unchanged since, and a process that finds a blob another
// one just published and verified need not read it again.
//
// Records live in .meta/verified.log, one line each, appended with one write
// per batch (and one fsync when the caller asks for durability):
//
//	v1 <md5> <size> <mtime_ns> <ino> <sha256 or -> <verified_at unix ns>
//	x1 <md5> <unix ns>                     (forget md5: it failed or went)
//
// The last line of an md5 wins; a torn last line is ignored. Compaction
// (CompactVerified, run by verify and gc) rewrites the log with one line per
// live blob. Records of older releases, one JSON file per blob under
// .meta/verified/ ({"size","mtime_ns","ino","md5","sha256","verified_at"}),
// are read as well and folded into the log by the next compaction.
type Verified struct {
	MD5 string
	// SHA256 of the same bytes, "" when the writer did not compute it.
	SHA256  string
	Size    int64
	MtimeNS int64
	Ino     uint64
	At      time.Time
}

// NewVerified describes the blob whose bytes (identity id) hashed to md5 at at.
func NewVerified(md5, sha256 string, id fsx.FileID, at time.Time) Verified {
	return Verified{MD5: md5, SHA256: sha256, Size: id.Size, MtimeNS: id.MtimeNS, Ino: id.Ino, At: at}
}

// Matches reports whether the record still describes the file id: same
// inode, size and mtime. A rewrite in place changes the mtime (unless forged
// back), a replacement the inode.
func (v Verified) Matches(id fsx.FileID) bool {
	return v.Size == id.Size && v.MtimeNS == id.MtimeNS && v.Ino == id.Ino && id.IsRegular()
}

var md5RE = regexp.MustCompile(`^[0-9a-f]{32}$`)

var sha256RE = regexp.MustCompile(`^[0-9a-f]{64}$`)

func (v Verified) line() ([]byte, error) {
	if !md5RE.MatchString(v.MD5) {
		return nil, fmt.Errorf("verified record: %q is not a lower-case hex MD5", v.MD5)
	}
	sha := v.SHA256
	if sha == "" {
		sha = "-"
	} else if !sha256RE.MatchString(sha) {
		return nil, fmt.Errorf("verified record of %s: %q is not a lower-case hex SHA-256", v.MD5, sha)
	}
	b := make([]byte, 0, 160)
	b = append(b, "v1 "...)
	b = append(b, v.MD5...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, v.Size, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, v.MtimeNS, 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, v.Ino, 10)
	b = append(b, ' ')
	b = append(b, sha...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, v.At.UnixNano(), 10)
	return append(b, '\n'), nil
}

func forgetLine(md5 string, at time.Time) []byte {
	return []byte("x1 " + md5 + " " + strconv.FormatInt(at.UnixNano(), 10) + "\n")
}

// parseLine decodes one complete line (without its newline): a record, or
// a tombstone (forget=true). ok is false for anything else.
func parseLine(l []byte) (v Verified, forget, ok bool) {
	f := strings.Fields(string(l))
	switch {
	case len(f) == 3 && f[0] == "x1" && md5RE.MatchString(f[1]):
		return Verified{MD5: f[1]}, true, true
	case len(f) != 7 || f[0] != "v1" || !md5RE.MatchString(f[1]):
		return v, false, false
	}
	v.MD5 = f[1]
	var err1, err2, err3, err4 error
	v.Size, err1 = strconv.ParseInt(f[2], 10, 64)
	v.MtimeNS, err2 = strconv.ParseInt(f[3], 10, 64)
	v.Ino, err3 = strconv.ParseUint(f[4], 10, 64)
	at, err4 := strconv.ParseInt(f[6], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || v.Size < 0 {
		return Verified{}, false, false
	}
	if f[5] != "-" {
		if !sha256RE.MatchString(f[5]) {
			return Verified{}, false, false
		}
		v.SHA256 = f[5]
	}
	v.At = time.Unix(0, at)
	return v, false, true
}

// AppendVerified adds records with a single write to the log; with sync it
// fsyncs once (a batch of a verify run), without it the record is a hint
// that may be lost in a crash (a publish: the blob itself is durable).
func AppendVerified(home layout.Home, sync bool, recs ...Verified) error {
	if len(recs) == 0 {
		return nil
	}
	var buf bytes.Buffer
	for _, r := range recs {
		l, err := r.line()
		if err != nil {
			return err
		}
		buf.Write(l)
	}
	return appendLog(home, buf.Bytes(), sync)
}

// ForgetVerified records that md5s are no longer verified (they failed a
// check or were removed): their earlier records stop counting.
func ForgetVerified(home layout.Home, md5s ...string) error {
	var buf bytes.Buffer
	now := time.Now()
	for _, m := range md5s {
		if !md5RE.MatchString(m) {
			return fmt.Errorf("forget verified record: %q is not a lower-case hex MD5", m)
		}
		buf.Write(forgetLine(m, now))
	}
	if buf.Len() == 0 {
		return nil
	}
	if err := appendLog(home, buf.Bytes(), false); err != nil {
		return err
	}
	// A legacy record would otherwise outlive the tombstone at the next
	// compaction: it goes now.
	if d, err := sub(home, LegacyVerified); err == nil && d != nil {
		for _, m := range md5s {
			if id, err := d.Lstat(m); err == nil && id.IsRegular() {
				d.Remove(m)
			}
		}
		d.Close()
	}
	return nil
}

// appendLog writes data at the end of the log under a shared flock (the
// compactor takes it exclusively), reopening when a compaction replaced the
// file meanwhile.
func appendLog(home layout.Home, data []byte, sync bool) error {
	d, err := Ensure(home)
	if err != nil {
		return fmt.Errorf("verified records: %w", err)
	}
	defer d.Close()
	for attempt := 0; ; attempt++ {
		f, err := d.Create(VerifiedLog, os.O_WRONLY|os.O_APPEND, FilePerm)
		if err != nil {
			return fmt.Errorf("verified records: %w", err)
		}
		if err := lockShared(f); err != nil {
			f.Close()
			return fmt.Errorf("verified records: lock %s: %w", f.Name(), err)
		}
		cur, err1 := d.Lstat(VerifiedLog)
		mine, err2 := fsx.FstatID(f)
		if err1 != nil || err2 != nil || !cur.SameFile(mine) {
			f.Close() // replaced by a compaction: write to the new file
			if attempt < 8 {
				continue
			}
			return fmt.Errorf("verified records: %s keeps being replaced", f.Name())
		}
		if !mine.IsRegular() {
			f.Close()
			return &fsx.UnsafePathError{Op: "append to", Path: f.Name(), Kind: fsx.ErrNotRegular}
		}
		_, err = f.Write(data)
		if err == nil && sync {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("verified records: %w", err)
		}
		return nil
	}
}

// VerifiedSet is every record read at one moment: the latest per md5.
type VerifiedSet struct {
	recs map[string]Verified
	// LogBytes and LogLines describe the log as read; Legacy counts the
	// records of older releases found under .meta/verified/.
	LogBytes int64
	LogLines int
	Legacy   int
	// LegacyBytes: their apparent size.
	LegacyBytes int64
}

// Get returns the record of md5.
func (s *VerifiedSet) Get(md5 string) (Verified, bool) {
	if s == nil {
		return Verified{}, false
	}
	v, ok := s.recs[md5]
	return v, ok
}

// Len is the number of live records.
func (s *VerifiedSet) Len() int {
	if s == nil {
		return 0
	}
	return len(s.recs)
}

// MD5s returns the md5s with a record (any order).
func (s *VerifiedSet) MD5s() []string {
	if s == nil {
		return nil
	}
	out := make([]string, 0, len(s.recs))
	for m := range s.recs {
		out = append(out, m)
	}
	return out
}

// LoadVerified reads every record: the log, then (for md5s the log does not
// know) the legacy per-blob files. A missing .meta gives an empty set.
func LoadVerified(ctx context.Context, home layout.Home) (*VerifiedSet, error) {
	d, err := Open(home)
	if err != nil {
		return nil, fmt.Errorf("verified records: %w", err)
	}
	set := &VerifiedSet{recs: map[string]Verified{}}
	if d == nil {
		return set, nil
	}
	defer d.Close()
	data, _, err := d.ReadFile(VerifiedLog, 1<<40)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("verified records: %w", err)
	}
	forgotten := map[string]bool{}
	set.LogBytes = int64(len(data))
	set.LogLines = applyLog(data, set.recs, forgotten)
	if err := readLegacy(ctx, d, set, forgotten); err != nil {
		return nil, err
	}
	return set, nil
}

// applyLog folds complete lines into recs; a tombstone deletes (and is noted
// in forgotten, so that a legacy record does not come back). It returns the
// number of lines.
func applyLog(data []byte, recs map[string]Verified, forgotten map[string]bool) int {
	n := 0
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break // torn last line
		}
		l := data[:i]
		data = data[i+1:]
		n++
		v, forget, ok := parseLine(l)
		switch {
		case !ok:
		case forget:
			delete(recs, v.MD5)
			forgotten[v.MD5] = true
		default:
			recs[v.MD5] = v
			delete(forgotten, v.MD5)
		}
	}
	return n
}

// legacyRecord is the JSON of a record of an older release.
type legacyRecord struct {
	Size       int64  `json:"size"`
	MtimeNS    int64  `json:"mtime_ns"`
	Ino        uint64 `json:"ino"`
	MD5        string `json:"md5"`
	SHA256     string `json:"sha256"`
	VerifiedAt string `json:"verified_at"`
}

func readLegacy(ctx context.Context, meta *fsx.Dir, set *VerifiedSet, forgotten map[string]bool) error {
	d, err := meta.Sub(LegacyVerified)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("verified records: %w", err)
	}
	defer d.Close()
	ents, err := d.Entries()
	if err != nil {
		return fmt.Errorf("verified records: %w", err)
	}
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !md5RE.MatchString(e.Name) || !e.IsRegular() {
			continue
		}
		v, size, ok := readLegacyRecord(d, e.Name)
		if !ok {
			continue
		}
		set.Legacy++
		set.LegacyBytes += size
		if _, known := set.recs[v.MD5]; !known && !forgotten[v.MD5] {
			set.recs[v.MD5] = v
		}
	}
	return nil
}

func readLegacyRecord(d *fsx.Dir, name string) (Verified, int64, bool) {
	data, id, err := d.ReadFile(name, maxRecord)
	if err != nil {
		return Verified{}, 0, false
	}
	var r legacyRecord
	if json.Unmarshal(data, &r) != nil || r.MD5 != name || r.Size < 0 {
		return Verified{}, id.Size, true
	}
	at, _ := offlinereg.ParseTimestamp(r.VerifiedAt)
	sha := r.SHA256
	if !sha256RE.MatchString(sha) {
		sha = ""
	}
	return Verified{MD5: r.MD5, SHA256: sha, Size: r.Size, MtimeNS: r.MtimeNS, Ino: r.Ino, At: at}, id.Size, true
}
