// Package journal owns the resume journal of a partial download
// (download.md §3) and the question every reader of one asks: is its owner
// still alive? The download engine writes journals and adopts the partials
// of dead owners; maintenance (gc) removes the partials of owners that are
// dead and silent for its grace period. Both decide through this package,
// so they cannot disagree about a zombie or a reused pid.
//
// A journal sits next to its data file: ".<md5>.partial-<token>.json". It
// lists byte ranges that were fsynced before they were recorded, each with a
// hash of its bytes, and who owns the partial. Journals are hints: adopted
// ranges are re-hashed against their recorded hash, and the MD5 over the
// whole file is the only authority.
//
// Range hashes: download.md §3 shows SHA-256; xxh64 is recorded by default
// ("range_hash" names the algorithm; both are read). The range hash only
// detects bytes that differ from what was written (torn or zero-filled
// pages after a power loss), never an attacker (the final MD5 does that),
// and on a 2-core machine a second SHA-256 pass over every byte costs ~15 %
// of the throughput. The journal is ours alone: the reference never reads it.
package journal

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/modelcache/modelcache/internal/fsx"
)

const (
	// Version is the journal format written and accepted.
	Version = 1
	// MaxBytes bounds a journal read from disk.
	MaxBytes = 1 << 20
	// XXH64 and SHA256 name the range-hash algorithms ("range_hash").
	XXH64  = "xxh64"
	SHA256 = "sha256"
)

// File is the JSON form. Ranges are inclusive, as in the spec.
type File struct {
	Version     int     `json:"version"`
	MD5         string  `json:"md5"`
	Size        int64   `json:"size"`
	ETag        string  `json:"etag"`
	URLPath     string  `json:"url_path"`
	RangeHash   string  `json:"range_hash,omitempty"`
	RangesDone  []Range `json:"ranges_done"`
	Owner       Owner   `json:"owner"`
	HeartbeatAt string  `json:"heartbeat_at"`
}

// Owner identifies the process that writes a partial: host, pid and the
// pid's start time (pids are reused, start times are not), and the random
// token in the partial's name.
type Owner struct {
	Host      string `json:"host"`
	PID       int    `json:"pid"`
	StartTime string `json:"start_time"`
	Token     string `json:"token"`
}

// Range is [First, Last] (inclusive) with the hash of its bytes; its JSON
// form is the array [first, last, hash].
type Range struct {
	First, Last int64
	Hash        string
}

// Len is the number of bytes in r.
func (r Range) Len() int64 { return r.Last - r.First + 1 }

func (r Range) MarshalJSON() ([]byte, error) {
	return json.Marshal([]any{r.First, r.Last, r.Hash})
}

func (r *Range) UnmarshalJSON(b []byte) error {
	var raw []json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	if len(raw) != 3 {
		return fmt.Errorf("range: want [first, last, hash], got %d items", len(raw))
	}
	if err := json.Unmarshal(raw[0], &r.First); err != nil {
		return err
	}
	if err := json.Unmarshal(raw[1], &r.Last); err != nil {
		return err
	}
	return json.Unmarshal(raw[2], &r.Hash)
}

// Validate checks the version, the algorithm and that the ranges are
// sorted, disjoint and inside the size.
func (j *File) Validate() error {
	if j.Version != Version {
		return fmt.Errorf("journal version %d, want %d", j.Version, Version)
	}
	if j.Size < 0 {
		return errors.New("journal: negative size")
	}
	switch j.RangeHash {
	case "", SHA256, XXH64:
	default:
		return fmt.Errorf("journal: unknown range hash %q", j.RangeHash)
	}
	prev := int64(-1)
	for _, r := range j.RangesDone {
		if r.First < 0 || r.Last < r.First || r.Last >= j.Size || r.First <= prev {
			return fmt.Errorf("journal: bad range [%d, %d] (size %d)", r.First, r.Last, j.Size)
		}
		prev = r.Last
	}
	return nil
}

// DoneBytes is the number of bytes the journal vouches for.
func (j *File) DoneBytes() int64 {
	var n int64
	for _, r := range j.RangesDone {
		n += r.Len()
	}
	return n
}

// Algo is the range-hash algorithm (journals without the field used SHA-256).
func (j *File) Algo() string {
	if j.RangeHash == "" {
		return SHA256
	}
	return j.RangeHash
}

// Heartbeat is when the owner last rewrote the journal (zero if unparseable).
func (j *File) Heartbeat() time.Time {
	t, _ := time.Parse(time.RFC3339Nano, j.HeartbeatAt)
	return t
}

// Parse decodes and validates a journal.
func Parse(b []byte) (*File, error) {
	if len(b) > MaxBytes {
		return nil, fmt.Errorf("larger than %d bytes", MaxBytes)
	}
	var j File
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, err
	}
	if err := j.Validate(); err != nil {
		return nil, err
	}
	return &j, nil
}

// Read reads and validates a journal without following symlinks.
func Read(path string) (*File, error) {
	f, err := fsx.OpenNoFollow(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxBytes+1))
	if err != nil {
		return nil, err
	}
	j, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("journal %s: %w", path, err)
	}
	return j, nil
}

// Write stamps the heartbeat and replaces the journal atomically (temp,
// fsync, rename, fsync of the directory).
func Write(path string, j *File) error {
	j.HeartbeatAt = time.Now().UTC().Format(time.RFC3339Nano)
	b, err := json.Marshal(j)
	if err != nil {
		return err
	}
	return fsx.WriteFileAtomic(path, b, 0o644)
}
