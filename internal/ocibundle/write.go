package ocibundle

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/modelcache/modelcache/internal/fsx"
)

// epoch is the modification time of every tar entry: fixed, so that the
// same cache gives the same archive bytes.
var epoch = time.Unix(0, 0).UTC()

type layoutJSON struct {
	ImageLayoutVersion string `json:"imageLayoutVersion"`
}

func (g *Graph) layoutFiles() (layoutData, indexData []byte, err error) {
	if layoutData, err = json.Marshal(layoutJSON{ImageLayoutVersion: layoutVersion}); err != nil {
		return nil, nil, err
	}
	indexData, err = json.Marshal(g.index())
	return layoutData, indexData, err
}

// WriteTar writes the graph as an OCI image layout in tar form: oci-layout,
// index.json, the directories, the manifests and configs, then the layers,
// each group sorted by digest; normalised headers (mode 0644/0755, uid and
// gid 0, no names, mtime 0). Layer bytes are re-hashed as they are copied:
// a blob that changed since it was collected fails the write.
func (g *Graph) WriteTar(ctx context.Context, w io.Writer) error {
	tw := tar.NewWriter(w)
	layoutData, indexData, err := g.layoutFiles()
	if err != nil {
		return err
	}
	hdr := func(name string, size int64, dir bool) *tar.Header {
		h := &tar.Header{Name: name, Size: size, Mode: 0o644, ModTime: epoch, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if dir {
			h.Mode, h.Typeflag, h.Size = 0o755, tar.TypeDir, 0
		}
		return h
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{layoutFile, layoutData}, {indexFile, indexData}} {
		if err := tw.WriteHeader(hdr(f.name, int64(len(f.data)), false)); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	for _, d := range []string{blobsDir + "/", blobsDir + "/sha256/"} {
		if err := tw.WriteHeader(hdr(d, 0, true)); err != nil {
			return err
		}
	}
	for _, b := range g.blobDescs() {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := tw.WriteHeader(hdr(blobName(b), b.desc.Size, false)); err != nil {
			return err
		}
		if err := g.copyBlob(ctx, tw, b); err != nil {
			return err
		}
	}
	return tw.Close()
}

func blobName(b graphBlob) string {
	return blobsDir + "/" + b.desc.Digest.Algorithm().String() + "/" + b.desc.Digest.Encoded()
}

func (g *Graph) copyBlob(ctx context.Context, w io.Writer, b graphBlob) error {
	if b.data != nil {
		_, err := w.Write(b.data)
		return err
	}
	r, err := g.Fetch(ctx, b.desc)
	if err != nil {
		return err
	}
	defer r.Close()
	n, err := io.Copy(w, r)
	if err == nil && n != b.desc.Size {
		err = fmt.Errorf("blob %s: copied %d of %d bytes", b.desc.Digest, n, b.desc.Size)
	}
	return err
}

// WriteTarFile writes the tar layout to path atomically: a private temp
// in the same directory, fsync, rename. A failed or interrupted export
// leaves no file at path.
func (g *Graph) WriteTarFile(ctx context.Context, path string) error {
	if err := fsx.WriteAtomic(path, 0o644, func(w io.Writer) error { return g.WriteTar(ctx, w) }); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// WriteDir writes the graph as an OCI image layout directory at dir
// (created if needed; an existing directory must be empty or already an
// image layout, whose blobs are kept). Every file is written to a temp and
// renamed; index.json comes last, so a reader never sees an index naming a
// blob that is not complete.
func (g *Graph) WriteDir(ctx context.Context, dir string) error {
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return err
	case len(entries) > 0:
		if _, err := os.Lstat(filepath.Join(dir, layoutFile)); err != nil {
			return fmt.Errorf("%s is not empty and not an OCI image layout; choose a new directory: %w", dir, fs.ErrExist)
		}
	}
	blobDir := filepath.Join(dir, blobsDir, "sha256")
	if err := os.MkdirAll(blobDir, 0o755); err != nil {
		return err
	}
	for _, sub := range []string{dir, filepath.Join(dir, blobsDir), blobDir} {
		if link, err := fsx.IsSymlink(sub); err != nil || link {
			return fmt.Errorf("refusing to write the bundle through %s: %w", sub, fsx.ErrSymlink)
		}
	}
	for _, b := range g.blobDescs() {
		if err := ctx.Err(); err != nil {
			return err
		}
		final := filepath.Join(blobDir, b.desc.Digest.Encoded())
		if fi, err := os.Lstat(final); err == nil && fi.Mode().IsRegular() && fi.Size() == b.desc.Size {
			continue // content-addressed: written by an earlier export (import verifies every byte anyway)
		}
		if err := writeFileVia(final, func(w io.Writer) error { return g.copyBlob(ctx, w, b) }); err != nil {
			return err
		}
	}
	layoutData, indexData, err := g.layoutFiles()
	if err != nil {
		return err
	}
	if err := fsx.WriteFileAtomic(filepath.Join(dir, layoutFile), layoutData, 0o644); err != nil {
		return err
	}
	return fsx.WriteFileAtomic(filepath.Join(dir, indexFile), indexData, 0o644)
}

func writeFileVia(final string, fill func(io.Writer) error) error {
	tok, err := fsx.HexToken()
	if err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(final), "."+filepath.Base(final)+".partial-"+tok)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if err := fill(f); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, final); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
