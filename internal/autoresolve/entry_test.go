package autoresolve

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/internal/compat"
	"github.com/modelcache/modelcache/internal/lock"
	"github.com/modelcache/modelcache/internal/pyjson"
	"github.com/modelcache/modelcache/metadata"
)

type readVerdict struct {
	Valid      bool    `json:"valid"`
	Error      *string `json:"error"`
	ParsedJSON *string `json:"parsed_json"`
}

type entryWritten struct {
	Name   string `json:"name"`
	Inputs struct {
		ModelID               string          `json:"model_id"`
		CacheModelID          *string         `json:"cache_model_id"`
		CanonicalModelID      *string         `json:"canonical_model_id"`
		ModelPackageID        string          `json:"model_package_id"`
		ResolvedFiles         []string        `json:"resolved_files"`
		ModelArchitecture     *string         `json:"model_architecture"`
		TaskType              *string         `json:"task_type"`
		BackendType           *string         `json:"backend_type"`
		ModelDependencies     *[]depJSON      `json:"model_dependencies"`
		ModelFeatures         json.RawMessage `json:"model_features"`
		RecommendedParameters json.RawMessage `json:"recommended_parameters"`
		TrustedSource         *bool           `json:"trusted_source"`
		APIKey                *string         `json:"api_key"`
		CreatedAt             string          `json:"created_at"`
		Hash                  string          `json:"hash"`
	} `json:"inputs"`
	FileName         string      `json:"file_name"`
	FileText         string      `json:"file_text"`
	CredentialHash   string      `json:"credential_hash"`
	ReadOffline      readVerdict `json:"read_offline"`
	ReadOnlineSchema readVerdict `json:"read_online_schema"`
}

type depJSON struct {
	Name           string  `json:"name"`
	ModelID        string  `json:"model_id"`
	ModelPackageID *string `json:"model_package_id"`
}

type entryRead struct {
	Name             string      `json:"name"`
	FileTextUTF8Hex  string      `json:"file_text_utf8_hex"`
	ReadOffline      readVerdict `json:"read_offline"`
	ReadOnlineSchema readVerdict `json:"read_online_schema"`
}

type entrySection struct {
	Written []entryWritten `json:"written"`
	Read    []entryRead    `json:"read"`
}

func loadEntrySection(t *testing.T) entrySection {
	t.Helper()
	var s entrySection
	if err := json.Unmarshal(compat.Section(t, "auto_resolution_entry"), &s); err != nil {
		t.Fatal(err)
	}
	if len(s.Written) == 0 || len(s.Read) == 0 {
		t.Fatal("auto_resolution_entry has no records")
	}
	return s
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func toFloat(t *testing.T, v any) float64 {
	t.Helper()
	f, err := laxFloat(v)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (w entryWritten) resolution(t *testing.T) Resolution {
	t.Helper()
	in := w.Inputs
	r := Resolution{
		ModelID: in.ModelID, CacheModelID: in.CacheModelID, CanonicalModelID: in.CanonicalModelID,
		ModelPackageID: in.ModelPackageID, ResolvedFiles: in.ResolvedFiles,
		ModelArchitecture: in.ModelArchitecture, TaskType: in.TaskType, BackendType: in.BackendType,
		TrustedSource: in.TrustedSource, APIKey: in.APIKey,
	}
	if in.ModelDependencies != nil {
		r.ModelDependencies = []metadata.ModelDependency{}
		for _, d := range *in.ModelDependencies {
			r.ModelDependencies = append(r.ModelDependencies, metadata.ModelDependency(d))
		}
	}
	r.ModelFeatures = compat.MustValue(t, in.ModelFeatures)
	if rp, ok := compat.MustValue(t, in.RecommendedParameters).(*pyjson.Object); ok {
		// The reference's model coerces ints to floats (1 -> 1.0).
		p := &metadata.RecommendedParameters{}
		if c, _ := rp.Get("confidence"); c != nil {
			f := toFloat(t, c)
			p.Confidence = &f
		}
		if pc, _ := rp.Get("per_class_confidence"); pc != nil {
			p.PerClassConfidence = []metadata.ClassConfidence{}
			po := pc.(*pyjson.Object)
			for _, k := range po.Keys() {
				v, _ := po.Get(k)
				p.PerClassConfidence = append(p.PerClassConfidence, metadata.ClassConfidence{Class: k, Confidence: toFloat(t, v)})
			}
		}
		r.RecommendedParameters = p
	}
	return r
}

// frozenClock returns the naive local time recorded as created_at.
func frozenClock(t *testing.T, createdAt string) func() time.Time {
	t.Helper()
	ts, err := parseISO(createdAt)
	if err != nil || !ts.Naive {
		t.Fatalf("created_at %q: %v", createdAt, err)
	}
	return func() time.Time { return ts.Time }
}

// checkVerdict compares ParseEntry's verdict (and the dumped entry,
// structurally) with a recorded reader verdict.
func checkVerdict(t *testing.T, reader string, e *Entry, err error, want readVerdict) {
	t.Helper()
	if (err == nil) != want.Valid {
		t.Fatalf("%s: valid=%v, want %v (err %v, reference %v)", reader, err == nil, want.Valid, err, want.Error)
	}
	if err != nil || want.ParsedJSON == nil {
		return
	}
	exp, derr := pyjson.Decode([]byte(*want.ParsedJSON))
	if derr != nil {
		t.Fatal(derr)
	}
	// Sorted serialization: key order ignored, int/float kinds and NaN kept.
	gotB, _ := pyjson.MarshalSorted(e.dump())
	wantB, _ := pyjson.MarshalSorted(exp)
	if string(gotB) != string(wantB) {
		t.Errorf("%s: parsed entry\n got %s\nwant %s", reader, gotB, wantB)
	}
}

func TestEntryVectorsWritten(t *testing.T) {
	sec := loadEntrySection(t)
	ctx := context.Background()
	for _, w := range sec.Written {
		t.Run(w.Name, func(t *testing.T) {
			clock := frozenClock(t, w.Inputs.CreatedAt)
			r := w.resolution(t)
			e := NewEntry(r, clock())
			got, err := MarshalEntry(e)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != w.FileText {
				t.Fatalf("file text\n got %s\nwant %s", got, w.FileText)
			}
			if *e.CredentialHash != w.CredentialHash {
				t.Errorf("credential_hash %s, want %s", *e.CredentialHash, w.CredentialHash)
			}
			if w.FileName != w.Inputs.Hash+".json" {
				t.Fatalf("file_name %s vs hash %s", w.FileName, w.Inputs.Hash)
			}
			pe, perr := ParseEntry([]byte(w.FileText))
			checkVerdict(t, "online schema", pe, perr, w.ReadOnlineSchema)
			checkVerdict(t, "offline", pe, perr, w.ReadOffline)

			// Through the cache: same bytes under <hash>.json, mode 0644; an
			// entry the reference cannot read back is refused instead.
			dir := filepath.Join(t.TempDir(), "auto-resolution-cache")
			c, err := New(Options{Dir: dir, Clock: clock, Logger: quietLogger(), TTL: TTLMinutes(1 << 40)})
			if err != nil {
				t.Fatal(err)
			}
			rerr := c.Register(ctx, w.Inputs.Hash, r)
			if !w.ReadOnlineSchema.Valid {
				if !errors.Is(rerr, errdefs.ErrInvalidParameter) {
					t.Fatalf("register of an unreadable entry: %v", rerr)
				}
				if _, err := os.Lstat(filepath.Join(dir, w.FileName)); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("refused entry was written: %v", err)
				}
				return
			}
			if rerr != nil {
				t.Fatal(rerr)
			}
			onDisk, err := os.ReadFile(filepath.Join(dir, w.FileName))
			if err != nil {
				t.Fatal(err)
			}
			if string(onDisk) != w.FileText {
				t.Fatalf("registered bytes\n got %s\nwant %s", onDisk, w.FileText)
			}
			fi, _ := os.Stat(filepath.Join(dir, w.FileName))
			if fi.Mode().Perm() != DefaultPerm {
				t.Errorf("mode %v, want %v", fi.Mode().Perm(), DefaultPerm)
			}
			back, ok, err := c.Retrieve(ctx, w.Inputs.Hash)
			if err != nil || !ok {
				t.Fatalf("retrieve after register: ok=%v err=%v", ok, err)
			}
			again, _ := MarshalEntry(back)
			if string(again) != w.FileText {
				t.Errorf("round trip\n got %s\nwant %s", again, w.FileText)
			}
		})
	}
	t.Logf("auto_resolution_entry.written: checked %d records", len(sec.Written))
}

func TestEntryVectorsRead(t *testing.T) {
	sec := loadEntrySection(t)
	ctx := context.Background()
	const key = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, rd := range sec.Read {
		t.Run(rd.Name, func(t *testing.T) {
			data, err := hex.DecodeString(rd.FileTextUTF8Hex)
			if err != nil {
				t.Fatal(err)
			}
			e, perr := ParseEntry(data)
			checkVerdict(t, "online schema", e, perr, rd.ReadOnlineSchema)
			checkVerdict(t, "offline", e, perr, rd.ReadOffline)

			// The real readers agree with the schema verdict. A far-future
			// clock is not used: TTL is huge so only validity decides online.
			for _, offline := range []bool{false, true} {
				dir := t.TempDir()
				path := filepath.Join(dir, key+".json")
				if err := os.WriteFile(path, data, 0o600); err != nil {
					t.Fatal(err)
				}
				c, err := New(Options{Dir: dir, Offline: offline, Logger: quietLogger(), TTL: TTLMinutes(1 << 40),
					Clock: func() time.Time { return time.Date(2026, 2, 3, 4, 5, 6, 0, time.Local) }})
				if err != nil {
					t.Fatal(err)
				}
				want := rd.ReadOnlineSchema
				if offline {
					want = rd.ReadOffline
				}
				got, ok, err := c.Retrieve(ctx, key)
				if err != nil {
					t.Fatal(err)
				}
				if ok != want.Valid {
					t.Fatalf("offline=%v: hit=%v, want valid=%v", offline, ok, want.Valid)
				}
				if ok {
					checkVerdict(t, "reader", got, nil, readVerdict{Valid: true, ParsedJSON: want.ParsedJSON})
				}
				_, statErr := os.Lstat(path)
				switch {
				case offline && statErr != nil:
					t.Errorf("offline reader removed the entry: %v", statErr)
				case !offline && !want.Valid && !errors.Is(statErr, os.ErrNotExist):
					t.Errorf("online reader kept an invalid entry")
				case !offline && want.Valid && statErr != nil:
					t.Errorf("online reader removed a valid entry: %v", statErr)
				}
			}
		})
	}
	t.Logf("auto_resolution_entry.read: checked %d records", len(sec.Read))
}

// sharedLocker is for tests that want lock contention inside one process.
func sharedLocker() *lock.Locker { return lock.NewLocker(lock.Options{Logger: quietLogger()}) }
