package ocibundle

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/modelcache/modelcache/internal/fsx"
)

// Limits bound what a bundle may contain.
type Limits struct {
	// MaxMetadataSize caps oci-layout, index.json, manifests and configs
	// (default 4 MiB, the registries' manifest limit).
	MaxMetadataSize int64
	// MaxBlobSize caps any one blob (default 1 TiB).
	MaxBlobSize int64
}

func (l Limits) withDefaults() Limits {
	if l.MaxMetadataSize <= 0 {
		l.MaxMetadataSize = 4 << 20
	}
	if l.MaxBlobSize <= 0 {
		l.MaxBlobSize = 1 << 40
	}
	return l
}

// Bundle is an opened OCI image layout (directory or tar file). It serves
// blobs by digest (content.Fetcher); Roots are the manifests its index.json
// lists.
type Bundle struct {
	Path   string
	Roots  []ocispec.Descriptor
	limits Limits
	// tar form
	file  *os.File
	blobs map[digest.Digest]tarBlob
	// directory form
	dir string
}

type tarBlob struct{ offset, size int64 }

var blobEntryRE = regexp.MustCompile(`^blobs/sha256/([0-9a-f]{64})$`)

// OpenBundle opens a bundle written by export (or any OCI image layout of
// sha256 blobs): a directory, or a tar file whose every entry is checked
// first (ErrUnsafeEntry, ErrTruncated, ErrTooLarge). Nothing is written.
func OpenBundle(path string, limits Limits) (*Bundle, error) {
	limits = limits.withDefaults()
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	b := &Bundle{Path: path, limits: limits}
	var layoutData, indexData []byte
	if fi.IsDir() {
		b.dir = path
		for _, sub := range []string{filepath.Join(path, blobsDir), filepath.Join(path, blobsDir, "sha256")} {
			if link, err := fsx.IsSymlink(sub); err != nil || link {
				if err == nil {
					err = &EntryError{Entry: sub, Err: ErrUnsafeEntry, Detail: "a symlink where a layout directory belongs"}
				}
				return nil, err
			}
		}
		if layoutData, err = b.readDirFile(layoutFile); err != nil {
			return nil, err
		}
		if indexData, err = b.readDirFile(indexFile); err != nil {
			return nil, err
		}
	} else {
		f, err := fsx.OpenNoFollow(path)
		if err != nil {
			return nil, err
		}
		b.file = f
		if layoutData, indexData, err = b.scanTar(); err != nil {
			f.Close()
			return nil, err
		}
	}
	if err := b.parseLayout(layoutData, indexData); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// Close releases the tar file.
func (b *Bundle) Close() error {
	if b.file != nil {
		return b.file.Close()
	}
	return nil
}

func (b *Bundle) readDirFile(name string) ([]byte, error) {
	p := filepath.Join(b.dir, name)
	f, err := fsx.OpenNoFollow(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, &EntryError{Entry: name, Err: ErrInvalid, Detail: "missing: " + b.dir + " is not an OCI image layout"}
	}
	if err != nil {
		return nil, &EntryError{Entry: name, Err: ErrUnsafeEntry, Detail: err.Error()}
	}
	defer f.Close()
	return readLimited(f, b.limits.MaxMetadataSize, name)
}

func readLimited(r io.Reader, max int64, name string) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, &EntryError{Entry: name, Err: ErrTooLarge, Detail: fmt.Sprintf("larger than %d bytes", max)}
	}
	return data, nil
}

// scanTar checks every entry and indexes the blobs by offset.
func (b *Bundle) scanTar() (layoutData, indexData []byte, err error) {
	b.blobs = map[digest.Digest]tarBlob{}
	tr := tar.NewReader(b.file)
	seen := map[string]bool{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			if err := b.checkEndMarker(); err != nil {
				return nil, nil, err
			}
			break
		}
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, nil, &EntryError{Entry: b.Path, Err: ErrTruncated, Detail: "the archive ends inside an entry; copy it again"}
			}
			return nil, nil, &EntryError{Entry: b.Path, Err: ErrInvalid, Detail: "not a readable tar archive: " + err.Error()}
		}
		name, err := entryName(h.Name)
		if err != nil {
			return nil, nil, err
		}
		if seen[name] {
			return nil, nil, &EntryError{Entry: h.Name, Err: ErrUnsafeEntry, Detail: "appears twice"}
		}
		seen[name] = true
		for k := range h.PAXRecords {
			if strings.HasPrefix(k, "GNU.sparse.") {
				return nil, nil, &EntryError{Entry: h.Name, Err: ErrUnsafeEntry, Detail: "sparse files are not allowed"}
			}
		}
		switch h.Typeflag {
		case tar.TypeDir:
			if name != "." && name != blobsDir && name != blobsDir+"/sha256" {
				return nil, nil, &EntryError{Entry: h.Name, Err: ErrUnsafeEntry, Detail: "unknown directory (an OCI image layout has blobs/ and blobs/sha256/ only)"}
			}
			continue
		case tar.TypeReg:
		case tar.TypeSymlink, tar.TypeLink:
			return nil, nil, &EntryError{Entry: h.Name, Err: ErrUnsafeEntry, Detail: fmt.Sprintf("a link (to %q) is not allowed in a bundle", h.Linkname)}
		default:
			return nil, nil, &EntryError{Entry: h.Name, Err: ErrUnsafeEntry, Detail: fmt.Sprintf("entry type %q is not a regular file or directory", h.Typeflag)}
		}
		switch {
		case name == layoutFile || name == indexFile:
			data, err := readLimited(tr, b.limits.MaxMetadataSize, name)
			if err != nil {
				return nil, nil, truncated(err, b.Path)
			}
			if name == layoutFile {
				layoutData = data
			} else {
				indexData = data
			}
		case blobEntryRE.MatchString(name):
			if h.Size > b.limits.MaxBlobSize {
				return nil, nil, &EntryError{Entry: h.Name, Err: ErrTooLarge, Detail: fmt.Sprintf("%d bytes, above the %d-byte limit", h.Size, b.limits.MaxBlobSize)}
			}
			off, err := b.file.Seek(0, io.SeekCurrent)
			if err != nil {
				return nil, nil, err
			}
			d := digest.NewDigestFromEncoded(digest.SHA256, blobEntryRE.FindStringSubmatch(name)[1])
			b.blobs[d] = tarBlob{offset: off, size: h.Size}
		default:
			return nil, nil, &EntryError{Entry: h.Name, Err: ErrUnsafeEntry, Detail: "not part of an OCI image layout of sha256 blobs"}
		}
	}
	if layoutData == nil || indexData == nil {
		return nil, nil, &EntryError{Entry: b.Path, Err: ErrInvalid, Detail: "no oci-layout or index.json: not an OCI image layout (or the archive was cut short)"}
	}
	// The last entry's data must be complete (a seek past the end succeeds).
	end, err := b.file.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, nil, err
	}
	for d, tb := range b.blobs {
		if tb.offset+tb.size > end {
			return nil, nil, &EntryError{Entry: "blobs/sha256/" + d.Encoded(), Err: ErrTruncated, Detail: "the archive ends inside this blob; copy it again"}
		}
	}
	return layoutData, indexData, nil
}

// checkEndMarker requires the two zero blocks that end a tar archive right
// before the reader's position: the tar reader also reports a clean end
// when the file stops at a member boundary, or inside padding it skips by
// seeking.
func (b *Bundle) checkEndMarker() error {
	pos, err := b.file.Seek(0, io.SeekCurrent)
	if err != nil {
		return err
	}
	fi, err := b.file.Stat()
	if err != nil {
		return err
	}
	marker := make([]byte, 1024)
	if pos < 1024 || pos > fi.Size() {
		return &EntryError{Entry: b.Path, Err: ErrTruncated, Detail: "the archive ends without its end-of-archive marker; copy it again"}
	}
	if _, err := b.file.ReadAt(marker, pos-1024); err != nil {
		return err
	}
	for _, c := range marker {
		if c != 0 {
			return &EntryError{Entry: b.Path, Err: ErrTruncated, Detail: "the archive ends without its end-of-archive marker; copy it again"}
		}
	}
	return nil
}

func truncated(err error, path string) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return &EntryError{Entry: path, Err: ErrTruncated, Detail: "the archive ends inside an entry; copy it again"}
	}
	return err
}

// entryName normalises a tar member name ("./" prefix and a trailing "/"
// are tolerated) and refuses anything that could name a path outside the
// layout.
func entryName(raw string) (string, error) {
	bad := func(why string) (string, error) {
		return "", &EntryError{Entry: raw, Err: ErrUnsafeEntry, Detail: why}
	}
	if !utf8.ValidString(raw) || strings.ContainsAny(raw, "\x00\\") {
		return bad("not a clean UTF-8 path")
	}
	if strings.HasPrefix(raw, "/") {
		return bad("absolute path")
	}
	name := strings.TrimSuffix(strings.TrimPrefix(raw, "./"), "/")
	if name == "" {
		return ".", nil
	}
	for _, seg := range strings.Split(name, "/") {
		if seg == ".." {
			return bad("path escapes the bundle (..)")
		}
		if seg == "" || seg == "." {
			return bad("path with an empty or '.' segment")
		}
	}
	return name, nil
}

func (b *Bundle) parseLayout(layoutData, indexData []byte) error {
	var lj layoutJSON
	if err := json.Unmarshal(layoutData, &lj); err != nil || lj.ImageLayoutVersion != layoutVersion {
		return &EntryError{Entry: layoutFile, Err: ErrInvalid, Detail: fmt.Sprintf("imageLayoutVersion must be %q", layoutVersion)}
	}
	var idx ocispec.Index
	if err := json.Unmarshal(indexData, &idx); err != nil {
		return &EntryError{Entry: indexFile, Err: ErrInvalid, Detail: err.Error()}
	}
	if idx.SchemaVersion != 2 || len(idx.Manifests) == 0 {
		return &EntryError{Entry: indexFile, Err: ErrInvalid, Detail: "schemaVersion must be 2 and the index must list manifests"}
	}
	b.Roots = idx.Manifests
	return nil
}

// Fetch returns a blob's bytes (at most its descriptor's size plus one, so
// an overlong blob is detected); the caller verifies the digest.
func (b *Bundle) Fetch(ctx context.Context, desc ocispec.Descriptor) (io.ReadCloser, error) {
	if err := checkDigest(desc.Digest); err != nil {
		return nil, err
	}
	missing := &BlobError{Digest: desc.Digest.String(), Err: ErrMissingBlob, Detail: "named by the bundle's metadata but not in " + b.Path}
	if b.file != nil {
		tb, ok := b.blobs[desc.Digest]
		if !ok {
			return nil, missing
		}
		return io.NopCloser(io.NewSectionReader(b.file, tb.offset, tb.size)), nil
	}
	f, err := fsx.OpenNoFollow(filepath.Join(b.dir, blobsDir, "sha256", desc.Digest.Encoded()))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, missing
	}
	if err != nil {
		return nil, &EntryError{Entry: "blobs/sha256/" + desc.Digest.Encoded(), Err: ErrUnsafeEntry, Detail: err.Error()}
	}
	return fsx.ContextReadCloser(ctx, f), nil
}

// readMetadata fetches a JSON blob whole and verifies it against desc.
func readMetadata(ctx context.Context, f fetcher, desc ocispec.Descriptor, max int64) ([]byte, error) {
	if desc.Size < 0 || desc.Size > max {
		return nil, &BlobError{Digest: desc.Digest.String(), Err: ErrTooLarge, Detail: fmt.Sprintf("a %d-byte %s; metadata is limited to %d bytes", desc.Size, desc.MediaType, max)}
	}
	rc, err := f.Fetch(ctx, desc)
	if err != nil {
		return nil, err
	}
	vr, err := newVerifyingReader(rc, desc)
	if err != nil {
		return nil, err
	}
	defer vr.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, vr); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// fetcher is content.Fetcher: a Bundle, a Graph or a registry repository.
type fetcher interface {
	Fetch(ctx context.Context, target ocispec.Descriptor) (io.ReadCloser, error)
}
