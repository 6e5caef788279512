package offlinereg

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"time"

	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/pyjson"
)

// Sentinels for records that readers skip (errors.Is).
var (
	// ErrMalformedRecord: not JSON, not an object, or format_version is not
	// an integer.
	ErrMalformedRecord = errors.New("malformed offline-weights record")
	// ErrNewerFormat: format_version is above FormatVersion (written by a
	// newer release); skipped, never rewritten in place by readers.
	ErrNewerFormat = errors.New("offline-weights record written by a newer release")
)

// Record is one registry file as stored: the decoded document, which keeps
// fields this version does not know, and the file it was read from.
// Marshal reproduces the reference's bytes for any record it wrote.
type Record struct {
	// Path of the file the record was read from ("" for a parsed buffer).
	Path string
	// Doc is the whole JSON document (pyjson value model).
	Doc *pyjson.Object
}

// ParseRecord decodes record bytes under the reader rules of offline.md §3.4:
// a JSON object whose format_version is an integer (not a bool) <= 1.
func ParseRecord(data []byte) (*Record, error) {
	v, err := pyjson.Decode(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformedRecord, err)
	}
	doc, ok := v.(*pyjson.Object)
	if !ok {
		return nil, fmt.Errorf("%w: top-level value is not an object", ErrMalformedRecord)
	}
	fv, _ := doc.Get("format_version")
	n, ok := fv.(pyjson.Int) // a JSON true decodes as bool, so it is refused here
	if !ok {
		return nil, fmt.Errorf("%w: format_version %s is not an integer", ErrMalformedRecord, describe(fv))
	}
	if v, fits := n.Int64(); (fits && v > FormatVersion) || (!fits && n.Sign() > 0) {
		return nil, fmt.Errorf("%w (format_version=%s > %d)", ErrNewerFormat, n, FormatVersion)
	}
	return &Record{Doc: doc}, nil
}

// Marshal returns the record as the registry stores it: json.dumps(indent=2,
// sort_keys=True), ASCII, no trailing newline.
func (rec *Record) Marshal() ([]byte, error) {
	return pyjson.MarshalIndent(rec.Doc)
}

// CanonicalModelID returns canonical_model_id when it is a string.
func (rec *Record) CanonicalModelID() (string, bool) {
	return getString(rec.Doc, "canonical_model_id")
}

// RequestedAliases returns the string entries of requested_aliases.
func (rec *Record) RequestedAliases() []string {
	v, _ := rec.Doc.Get("requested_aliases")
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, a := range list {
		if s, ok := a.(string); ok {
			out = append(out, s)
		}
	}
	return out
}

// HasAlias reports whether requested_aliases lists id.
func (rec *Record) HasAlias(id string) bool {
	for _, a := range rec.RequestedAliases() {
		if a == id {
			return true
		}
	}
	return false
}

// Source returns the source field ("warmup", "cli-install") when it is a string.
func (rec *Record) Source() (string, bool) { return getString(rec.Doc, "source") }

// RecordedAt returns recorded_at when it parses as an ISO timestamp.
func (rec *Record) RecordedAt() (time.Time, bool) {
	s, ok := getString(rec.Doc, "recorded_at")
	if !ok {
		return time.Time{}, false
	}
	return ParseTimestamp(s)
}

// packagePayloads returns the stored package entries (any JSON values).
func (rec *Record) packagePayloads() ([]any, bool) {
	v, ok := rec.Doc.Get("packages")
	if !ok || v == nil {
		return nil, true
	}
	list, ok := v.([]any)
	return list, ok
}

// readRecordFile reads and parses one record without following a symlink.
// A missing file gives (nil, nil); a symlink or non-regular file gives
// *SymlinkError; unparsable content ErrMalformedRecord / ErrNewerFormat.
func readRecordFile(ctx context.Context, path string) (*Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := fsx.OpenNoFollow(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, asUnsafe(path, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxRecordSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > maxRecordSize {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrMalformedRecord, path, maxRecordSize)
	}
	rec, err := ParseRecord(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	rec.Path = path
	return rec, nil
}

func getString(o *pyjson.Object, key string) (string, bool) {
	v, _ := o.Get(key)
	s, ok := v.(string)
	return s, ok
}

// describe renders a JSON value for a log line (Python repr is not needed,
// only something recognizable).
func describe(v any) string {
	if v == nil {
		return "null"
	}
	b, err := pyjson.Marshal(v)
	if err != nil {
		return fmt.Sprintf("%v", v)
	}
	const max = 80
	if len(b) > max {
		return string(b[:max]) + "..."
	}
	return string(b)
}
