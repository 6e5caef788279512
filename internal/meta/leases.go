package meta

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/modelcache/modelcache/blobstore"
	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/layout"
	"github.com/modelcache/modelcache/internal/offlinereg"
)

// Lease is H/.meta/leases/<token>.json (§12): work in flight (a download, a
// materialization, an export) that GC must not collect from under it, and
// that Purge does not remove. Pins, when they come, follow the same shape
// under pins/: one small JSON document per protected package.
type Lease struct {
	PID       int      `json:"pid"`
	Host      string   `json:"host"`
	StartedAt string   `json:"started_at"`
	ExpiresAt string   `json:"expires_at"`
	Blobs     []string `json:"blobs"`
	// Packages are "<model id>/<package id>" (the cache owner's id) or
	// absolute package dirs.
	Packages []string `json:"packages"`
	// Path of the lease file (not stored).
	Path string `json:"-"`
	// Size of the lease file (not stored).
	Size int64 `json:"-"`
	// ModTime of the lease file (not stored).
	ModTime time.Time `json:"-"`
}

// Expired reports whether the lease no longer protects anything at now; a
// lease without a parsable expires_at protects nothing.
func (l *Lease) Expired(now time.Time) bool {
	t, ok := offlinereg.ParseTimestamp(l.ExpiresAt)
	return !ok || !now.Before(t)
}

// CreateLease writes a lease protecting blobs and packages until now+ttl and
// returns a function that removes it. Refresh a long operation by creating a
// new lease before the old one expires.
func CreateLease(home layout.Home, blobs, packages []string, ttl time.Duration) (release func() error, err error) {
	for _, b := range blobs {
		if err := blobstore.ValidateMD5(b); err != nil {
			return nil, err
		}
	}
	d, err := ensureSub(home, LeasesDir)
	if err != nil {
		return nil, fmt.Errorf("lease: %w", err)
	}
	tok, err := fsx.HexToken()
	if err != nil {
		d.Close()
		return nil, err
	}
	host, _ := os.Hostname()
	now := time.Now()
	l := Lease{
		PID: os.Getpid(), Host: host,
		StartedAt: offlinereg.FormatTimestamp(now), ExpiresAt: offlinereg.FormatTimestamp(now.Add(ttl)),
		Blobs: append([]string{}, blobs...), Packages: append([]string{}, packages...),
	}
	data, err := json.Marshal(l)
	if err != nil {
		d.Close()
		return nil, err
	}
	name := tok + ".json"
	if err := d.WriteFileAtomic(name, data, FilePerm); err != nil {
		d.Close()
		return nil, fmt.Errorf("lease: %w", err)
	}
	return func() error {
		defer d.Close()
		if err := d.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}, nil
}

// ReadLeases returns every readable lease (expired ones too; callers filter
// with Expired) and the paths of unreadable ones. A missing leases dir gives
// none; a symlinked one is refused.
func ReadLeases(ctx context.Context, home layout.Home) (leases []Lease, bad []string, err error) {
	d, err := sub(home, LeasesDir)
	if d == nil || err != nil {
		return nil, nil, err
	}
	defer d.Close()
	return ReadLeasesIn(ctx, d)
}

// ReadLeasesIn is ReadLeases on an opened leases directory.
func ReadLeasesIn(ctx context.Context, d *fsx.Dir) (leases []Lease, bad []string, err error) {
	ents, err := d.Entries()
	if err != nil {
		return nil, nil, err
	}
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		if strings.HasPrefix(e.Name, ".") || !strings.HasSuffix(e.Name, ".json") {
			continue
		}
		data, id, err := d.ReadFile(e.Name, maxRecord)
		var l Lease
		if err != nil || json.Unmarshal(data, &l) != nil {
			bad = append(bad, d.Join(e.Name))
			continue
		}
		l.Path, l.Size, l.ModTime = d.Join(e.Name), id.Size, time.Unix(0, id.MtimeNS)
		leases = append(leases, l)
	}
	sort.Slice(leases, func(i, j int) bool { return leases[i].Path < leases[j].Path })
	return leases, bad, nil
}
