package access

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/modelcache/modelcache/internal/fsx"
)

// Anonymous is the tenant of loads without an API key.
const Anonymous = "anonymous"

// tenantIDLen is how many hex digits of the key hash name a tenant in the
// audit log, metrics-free errors and AccessDeniedError (48 bits: enough to
// tell tenants apart, far too few to test a guessed key against).
const tenantIDLen = 12

// hashDomain separates this use of the per-cache salt from any other.
const hashDomain = "modelcache access guard v1\x00"

// tenant is one caller identity: the key's salted hash, never the key.
type tenant struct {
	hash string // 64 hex digits, or Anonymous
	id   string // hash prefix, or Anonymous
}

// hasher turns API keys into tenant identities with HMAC-SHA-256 under a
// salt shared by every process of one cache (H/.meta/guard/salt).
type hasher struct {
	salt []byte
	// shared: the salt is the cache's, so records on disk are usable.
	shared bool
}

func (h *hasher) tenant(apiKey *string) tenant {
	if apiKey == nil || *apiKey == "" {
		return tenant{hash: Anonymous, id: Anonymous}
	}
	m := hmac.New(sha256.New, h.salt)
	io.WriteString(m, hashDomain)
	io.WriteString(m, *apiKey)
	var sum [sha256.Size]byte
	full := hex.EncodeToString(m.Sum(sum[:0]))
	return tenant{hash: full, id: full[:tenantIDLen]}
}

// saltSize is the salt length in bytes (stored as hex plus a newline).
const saltSize = 32

// CorruptSaltError: H/.meta/guard/salt exists but is not a salt. It is never
// overwritten (every record written under it would become unreadable).
type CorruptSaltError struct{ Path string }

func (e *CorruptSaltError) Error() string {
	return fmt.Sprintf("%s is not a guard salt (want %d hex digits); remove it to start afresh "+
		"(existing verification records become unusable, so keys are verified online again)", e.Path, 2*saltSize)
}

// processSalt is a random salt for a guard without a usable cache salt:
// decisions still work, records are not written.
func processSalt() (*hasher, error) {
	s := make([]byte, saltSize)
	if _, err := rand.Read(s); err != nil {
		return nil, fmt.Errorf("read random bytes: %w", err)
	}
	return &hasher{salt: s}, nil
}

// cacheSalt reads the salt of the cache, creating it if it is missing. Two
// processes creating it at once agree: the loser of the no-replace rename
// reads the winner's.
func cacheSalt(d guardDirs) (*hasher, error) {
	s, err := readSalt(d)
	if err == nil {
		return &hasher{salt: s, shared: true}, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err := d.ensure(); err != nil {
		return nil, err
	}
	fresh := make([]byte, saltSize)
	if _, err := rand.Read(fresh); err != nil {
		return nil, fmt.Errorf("read random bytes: %w", err)
	}
	final := d.salt()
	name, err := fsx.AtomicTempName(filepath.Base(final))
	if err != nil {
		return nil, err
	}
	tmp := filepath.Join(d.guard(), name)
	if err := writeExclusive(tmp, []byte(hex.EncodeToString(fresh)+"\n")); err != nil {
		return nil, err
	}
	err = fsx.RenameNoReplace(tmp, final)
	if err != nil {
		os.Remove(tmp)
		if !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("publish %s: %w", final, err)
		}
		// Another process was first: use its salt.
		s, err := readSalt(d)
		if err != nil {
			return nil, err
		}
		return &hasher{salt: s, shared: true}, nil
	}
	if err := fsx.SyncDir(d.guard()); err != nil {
		return nil, err
	}
	return &hasher{salt: fresh, shared: true}, nil
}

// writeExclusive creates path (which must not exist: O_EXCL, so not through
// a symlink either), writes data and fsyncs it.
func writeExclusive(path string, data []byte) (err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, metaPerm)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(path)
		}
	}()
	if err = f.Chmod(metaPerm); err != nil {
		return fmt.Errorf("chmod %s: %w", path, err)
	}
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", path, err)
	}
	return f.Close()
}

func readSalt(d guardDirs) ([]byte, error) {
	b, err := d.read(d.salt(), 4*saltSize)
	if err != nil {
		return nil, err
	}
	s, err := hex.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || len(s) != saltSize {
		return nil, &CorruptSaltError{Path: d.salt()}
	}
	return s, nil
}
