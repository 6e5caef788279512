package meta

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/layout"
)

// PurgesDir holds purge intents: .meta/purges/<token>.json lists the blobs a
// purge is about to orphan, written before it removes anything and deleted
// once its GC pass ran. A purge killed in between leaves it behind, and the
// next purge or gc collects those blobs (when nothing names them) without
// waiting for the grace period, as the killed run would have.
const PurgesDir = "purges"

type purgeIntent struct {
	Blobs     []string `json:"blobs"`
	CreatedAt int64    `json:"created_at_unix_ns"`
}

// WritePurgeIntent records blobs (md5s) a purge is about to orphan and
// returns the function that deletes the record once they were collected.
func WritePurgeIntent(home layout.Home, blobs []string) (done func() error, err error) {
	for _, b := range blobs {
		if !md5RE.MatchString(b) {
			return nil, fmt.Errorf("purge intent: %q is not a lower-case hex MD5", b)
		}
	}
	d, err := ensureSub(home, PurgesDir)
	if err != nil {
		return nil, fmt.Errorf("purge intent: %w", err)
	}
	tok, err := fsx.HexToken()
	if err != nil {
		d.Close()
		return nil, err
	}
	data, err := json.Marshal(purgeIntent{Blobs: blobs, CreatedAt: time.Now().UnixNano()})
	if err != nil {
		d.Close()
		return nil, err
	}
	name := tok + ".json"
	if err := d.WriteFileAtomic(name, data, FilePerm); err != nil {
		d.Close()
		return nil, fmt.Errorf("purge intent: %w", err)
	}
	return func() error {
		defer d.Close()
		if err := d.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		removeIfEmpty(home)
		return nil
	}, nil
}

// removeIfEmpty drops .meta/purges once no intent is left (fails harmlessly
// when another purge's intent is there).
func removeIfEmpty(home layout.Home) {
	if d, err := Open(home); err == nil && d != nil {
		d.RemoveDir(PurgesDir)
		d.Close()
	}
}

// PendingPurges returns the blobs of intents left by purges that did not
// finish, and a function that deletes those intents (call it after the blobs
// were collected).
func PendingPurges(home layout.Home) (blobs []string, done func() error, err error) {
	done = func() error { return nil }
	d, err := sub(home, PurgesDir)
	if d == nil || err != nil {
		return nil, done, err
	}
	ents, err := d.Entries()
	if err != nil {
		d.Close()
		return nil, done, err
	}
	var names []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name, ".") || !strings.HasSuffix(e.Name, ".json") || !e.IsRegular() {
			continue
		}
		data, _, err := d.ReadFile(e.Name, maxRecord)
		var in purgeIntent
		if err != nil || json.Unmarshal(data, &in) != nil {
			continue
		}
		for _, b := range in.Blobs {
			if md5RE.MatchString(b) {
				blobs = append(blobs, b)
			}
		}
		names = append(names, e.Name)
	}
	return blobs, func() error {
		defer d.Close()
		var errs []error
		for _, n := range names {
			if err := d.Remove(n); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, err)
			}
		}
		removeIfEmpty(home)
		return errors.Join(errs...)
	}, nil
}
