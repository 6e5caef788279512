package layout

import (
	"cmp"
	"slices"
	"strings"

	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/metadata"
)

// Storage says where a declared artefact lives on disk.
type Storage string

const (
	// StorageSharedBlob: bytes in shared-blobs/<md5>, the handle a symlink to it.
	StorageSharedBlob Storage = "shared_blob"
	// StoragePackageFile: a regular file at the handle inside the package dir.
	StoragePackageFile Storage = "package_file"
)

// Declaration is the canonical description of one artefact, as recorded in a
// manifest's package_artifacts (without the sha256_hash, which needs the
// bytes).
type Declaration struct {
	FileHandle string
	MD5Hash    string // "" = null
	Unhashed   bool   // no provider MD5: identified by SourceHash instead
	SourceHash string // "" = null; SourceHash(DownloadURL) when Unhashed
	Storage    Storage
}

// Declarations validates one package's artifacts as a set and returns their
// canonical declarations, sorted by (lower(handle), handle). A Local
// artifact is already in the package directory (it must carry an MD5); the
// others are downloaded from their DownloadURL.
//
// Rejected, with an error wrapping errdefs.ErrCorruptPackage that names the
// handle: an invalid handle (ValidateHandle); an MD5 that is not 32
// lowercase hex digits; a local artefact without MD5; a download URL that
// urllib cannot split (unhashed artefacts only, as in the reference); the
// same handle twice; two paths (files or their directories) that differ only
// in letter case; a handle that is both a file and another handle's
// directory. A download artefact without MD5 is accepted as unhashed
// package_file storage; whether hashless downloads are allowed at all is the
// caller's decision (errdefs.ErrUntrustedFile).
func Declarations(arts []metadata.Artifact) ([]Declaration, error) {
	decls := make([]Declaration, 0, len(arts))
	for _, a := range arts {
		d, err := declare(a)
		if err != nil {
			return nil, err
		}
		decls = append(decls, d)
	}
	if err := checkHandleSet(arts); err != nil {
		return nil, err
	}
	slices.SortFunc(decls, func(a, b Declaration) int {
		return cmp.Or(
			strings.Compare(strings.ToLower(a.FileHandle), strings.ToLower(b.FileHandle)),
			strings.Compare(a.FileHandle, b.FileHandle))
	})
	return decls, nil
}

func declare(a metadata.Artifact) (Declaration, error) {
	if err := ValidateHandle(a.FileHandle); err != nil {
		return Declaration{}, err
	}
	fail := func(format string, args ...any) (Declaration, error) {
		return Declaration{}, newError(errdefs.ErrCorruptPackage, "artefact", a.FileHandle, format, args...)
	}
	md5 := a.MD5()
	if md5 != "" && ValidateMD5(md5) != nil {
		return fail("md5 hash %q is not 32 lowercase hex digits", md5)
	}
	switch {
	case a.Local && md5 == "":
		return fail("local artefact has no md5 hash (nothing could verify it)")
	case a.Local:
		return Declaration{FileHandle: a.FileHandle, MD5Hash: md5, Storage: StoragePackageFile}, nil
	case md5 != "":
		return Declaration{FileHandle: a.FileHandle, MD5Hash: md5, Storage: StorageSharedBlob}, nil
	}
	canonical, err := canonicalDownloadSource(a.DownloadURL)
	if err != nil {
		return fail("download URL %q cannot be parsed: %v", a.DownloadURL, err)
	}
	return Declaration{
		FileHandle: a.FileHandle,
		Unhashed:   true,
		SourceHash: sourceHashOf(canonical),
		Storage:    StoragePackageFile,
	}, nil
}

// checkHandleSet rejects handles that would collide on disk: duplicates,
// case-only differences of any path or directory prefix (they are one path
// on case-insensitive file systems), and a file that is also a directory.
// Handles are already valid, hence ASCII, so lower-casing is case folding.
func checkHandleSet(arts []metadata.Artifact) error {
	type node struct {
		path   string // as written
		handle string // the handle that introduced it
		isDir  bool
	}
	seen := make(map[string]node)
	for _, a := range arts {
		h := a.FileHandle
		// Visit every directory prefix ("a", "a/b") and then the file itself.
		for end := 0; end <= len(h); end++ {
			if end < len(h) && h[end] != '/' {
				continue
			}
			p, isDir := h[:end], end < len(h)
			prev, ok := seen[strings.ToLower(p)]
			if !ok {
				seen[strings.ToLower(p)] = node{path: p, handle: h, isDir: isDir}
				continue
			}
			fail := func(format string, args ...any) error {
				return newError(errdefs.ErrCorruptPackage, "artefact", h, format, args...)
			}
			switch {
			case prev.path != p:
				return fail("path %q differs only in letter case from %q (declared by %q)", p, prev.path, prev.handle)
			case prev.isDir != isDir && isDir:
				return fail("needs %q as a directory, but handle %q declares it as a file", p, prev.handle)
			case prev.isDir != isDir:
				return fail("is a file, but handle %q needs it as a directory", prev.handle)
			case !isDir:
				return fail("is declared twice")
			}
		}
	}
	return nil
}

// ValidateHandleSet checks every handle (ValidateHandle) and the
// package-wide rules of §4.4: no duplicates, no paths or directory prefixes
// that differ only in letter case, no handle that is both a file and
// another's directory.
func ValidateHandleSet(handles []string) error {
	arts := make([]metadata.Artifact, len(handles))
	for i, h := range handles {
		if err := ValidateHandle(h); err != nil {
			return err
		}
		arts[i] = metadata.Artifact{FileHandle: h}
	}
	return checkHandleSet(arts)
}
