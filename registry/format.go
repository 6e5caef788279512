// Package registry implements the on-disk registry format (docs/registry.md)
// and an HTTP server that publishes it through the weights API
// (GET /models/v1/external/weights) and serves the package files itself.
//
// Layout of a registry directory:
//
//	<root>/registry.json                       optional {"format": "modelcache-registry", "format_version": 1}
//	<root>/access.json                         optional API keys and per-key model allow-lists
//	<root>/models/<any dir>/model.json         one model (canonical id, aliases, model fields)
//	<root>/models/<any dir>/packages/<package id>/package.json   the package manifest and flags
//	<root>/models/<any dir>/packages/<package id>/files/...      the package files (handle = path below files/)
//
// Load validates everything (ids, handles, manifests, file presence) and
// computes every MD5 once; problems are returned together as a
// *ContentError, so bad content is reported at start-up and never served.
package registry

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/modelcache/modelcache/internal/pyjson"
	"github.com/modelcache/modelcache/metadata"
	"github.com/modelcache/modelcache/provider/roboflow"
)

// Format identifiers of registry.json.
const (
	FormatName    = "modelcache-registry"
	FormatVersion = 1
)

// File names inside a registry.
const (
	RegistryFile = "registry.json"
	AccessFile   = "access.json"
	ModelsDir    = "models"
	ModelFile    = "model.json"
	PackagesDir  = "packages"
	PackageFile  = "package.json"
	FilesDir     = "files"
)

// Registry is a loaded, validated registry directory.
type Registry struct {
	// Root is the absolute registry directory.
	Root string
	// Models sorted by canonical id.
	Models []*Model
	// Access is nil when the registry has no access.json (open registry).
	Access *Access
	// Warnings found while loading (served anyway).
	Warnings []string

	byID  map[string]*Model // canonical ids and aliases
	blobs map[string]*File  // md5 -> one file with these bytes
}

// Model is one model of the registry.
type Model struct {
	ID           string
	Aliases      []string
	Dir          string // absolute model directory
	Architecture string
	Variant      *string
	TaskType     *string
	Dependencies []metadata.ModelDependency // nil: null on the wire
	Recommended  *metadata.RecommendedParameters
	// Packages in announcement order.
	Packages []*Package
}

// Package is one package of a model.
type Package struct {
	ID          string
	Dir         string
	Manifest    *pyjson.Object // wire packageManifest, kept as written
	Trusted     bool
	Features    any // pyjson value: nil or *pyjson.Object
	Recommended *metadata.RecommendedParameters
	Files       []*File
	// Parsed is the package as a client parses it; nil for manifest types
	// clients skip (ignored or unknown types).
	Parsed *metadata.ModelPackage
}

// File is one package file.
type File struct {
	Handle  string
	Path    string // absolute source path
	Size    int64
	MD5     string
	ModTime time.Time
}

// ContentError lists every problem found in a registry directory.
type ContentError struct {
	Root     string
	Problems []string
}

func (e *ContentError) Error() string {
	return fmt.Sprintf("registry %s has %d problem(s):\n  - %s", e.Root, len(e.Problems), strings.Join(e.Problems, "\n  - "))
}

// LoadOptions tune Load.
type LoadOptions struct {
	// Logger receives warnings; nil discards them.
	Logger *slog.Logger
	// Workers hashing files in parallel; 0 means GOMAXPROCS.
	Workers int
}

// Lookup returns the model for a canonical id or an alias.
func (r *Registry) Lookup(id string) (*Model, bool) {
	m, ok := r.byID[id]
	return m, ok
}

// Blob returns a file holding the bytes with this MD5.
func (r *Registry) Blob(md5hex string) (*File, bool) {
	f, ok := r.blobs[md5hex]
	return f, ok
}

type loader struct {
	root     string
	realRoot string
	problems []string
	warnings []string
}

func (l *loader) problem(format string, args ...any) {
	l.problems = append(l.problems, fmt.Sprintf(format, args...))
}

func (l *loader) rel(p string) string {
	if r, err := filepath.Rel(l.root, p); err == nil {
		return filepath.ToSlash(r)
	}
	return p
}

// Load reads and validates the registry at root.
func Load(ctx context.Context, root string, opts LoadOptions) (*Registry, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return nil, fmt.Errorf("registry root: %w", err)
	}
	l := &loader{root: abs, realRoot: real}
	reg := &Registry{Root: abs, byID: map[string]*Model{}, blobs: map[string]*File{}}

	if b, err := os.ReadFile(filepath.Join(abs, RegistryFile)); err == nil {
		l.checkRegistryFile(b)
	} else if !errors.Is(err, fs.ErrNotExist) {
		l.problem("%s: %v", RegistryFile, err)
	}
	if b, err := os.ReadFile(filepath.Join(abs, AccessFile)); err == nil {
		acc, err := parseAccess(b)
		if err != nil {
			l.problem("%s: %v", AccessFile, err)
		}
		reg.Access = acc
	} else if !errors.Is(err, fs.ErrNotExist) {
		l.problem("%s: %v", AccessFile, err)
	}

	modelsDir := filepath.Join(abs, ModelsDir)
	entries, err := os.ReadDir(modelsDir)
	if err != nil {
		l.problem("%s: %v", ModelsDir, err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		dir := filepath.Join(modelsDir, e.Name())
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			l.warnings = append(l.warnings, fmt.Sprintf("%s: not a directory, ignored", l.rel(dir)))
			continue
		}
		if m := l.loadModel(dir); m != nil {
			reg.Models = append(reg.Models, m)
		}
	}
	sort.Slice(reg.Models, func(i, j int) bool { return reg.Models[i].ID < reg.Models[j].ID })
	for _, m := range reg.Models {
		for _, id := range append([]string{m.ID}, m.Aliases...) {
			if prev, ok := reg.byID[id]; ok {
				l.problem("%s: id %q is already used by %s", l.rel(m.Dir), id, l.rel(prev.Dir))
				continue
			}
			reg.byID[id] = m
		}
	}
	l.checkDependencies(reg)
	if len(l.problems) == 0 {
		if err := l.hashAll(ctx, reg, opts.Workers); err != nil {
			return nil, err
		}
	}
	reg.Warnings = l.warnings
	if opts.Logger != nil {
		for _, w := range l.warnings {
			opts.Logger.Warn("registry content warning", "root", abs, "warning", w)
		}
	}
	if len(l.problems) > 0 {
		return nil, &ContentError{Root: abs, Problems: l.problems}
	}
	return reg, nil
}

func (l *loader) checkRegistryFile(b []byte) {
	o, err := pyjson.DecodeObject(b)
	if err != nil {
		l.problem("%s: %v", RegistryFile, err)
		return
	}
	if v, _ := o.Get("format"); v != FormatName {
		l.problem("%s: \"format\" must be %q", RegistryFile, FormatName)
	}
	v, _ := o.Get("format_version")
	n, ok := v.(pyjson.Int)
	if iv, fits := n.Int64(); !ok || !fits || iv != FormatVersion {
		l.problem("%s: unsupported format_version (this server reads version %d)", RegistryFile, FormatVersion)
	}
}

func (l *loader) loadModel(dir string) *Model {
	where := l.rel(filepath.Join(dir, ModelFile))
	b, err := os.ReadFile(filepath.Join(dir, ModelFile))
	if err != nil {
		l.problem("%s: %v", where, err)
		return nil
	}
	o, err := pyjson.DecodeObject(b)
	if err != nil {
		l.problem("%s: %v", where, err)
		return nil
	}
	c := cfg{o: o, where: where, l: l}
	m := &Model{Dir: dir}
	m.ID = c.reqStr("model_id")
	if m.ID != "" {
		if err := validModelID(m.ID); err != nil {
			l.problem("%s: %v", where, err)
		}
	}
	m.Aliases = c.strList("aliases")
	for _, a := range m.Aliases {
		if err := validModelID(a); err != nil {
			l.problem("%s: alias: %v", where, err)
		}
	}
	m.Architecture = c.reqStr("model_architecture")
	m.Variant = c.optStr("model_variant")
	m.TaskType = c.optStr("task_type")
	m.Recommended = c.recommended("recommended_parameters")
	m.Dependencies = c.dependencies("model_dependencies")
	order := c.strList("package_order")
	c.unknownKeys("model_id", "aliases", "model_architecture", "model_variant", "task_type",
		"recommended_parameters", "model_dependencies", "package_order")

	pkgRoot := filepath.Join(dir, PackagesDir)
	entries, err := os.ReadDir(pkgRoot)
	if err != nil {
		l.problem("%s: %v", l.rel(pkgRoot), err)
		return m
	}
	byID := map[string]*Package{}
	folded := map[string]string{}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		pdir := filepath.Join(pkgRoot, e.Name())
		if st, err := os.Stat(pdir); err != nil || !st.IsDir() {
			l.warnings = append(l.warnings, fmt.Sprintf("%s: not a directory, ignored", l.rel(pdir)))
			continue
		}
		if err := validPackageID(e.Name()); err != nil {
			l.problem("%s: %v", l.rel(pdir), err)
			continue
		}
		if prev, ok := folded[strings.ToLower(e.Name())]; ok {
			l.problem("%s: package ids %q and %q differ only in case", l.rel(pkgRoot), prev, e.Name())
			continue
		}
		folded[strings.ToLower(e.Name())] = e.Name()
		if p := l.loadPackage(pdir, e.Name()); p != nil {
			byID[p.ID] = p
		}
	}
	seen := map[string]bool{}
	for _, id := range order {
		p, ok := byID[id]
		if !ok {
			l.problem("%s: package_order names unknown package %q", where, id)
			continue
		}
		if seen[id] {
			l.problem("%s: package_order lists %q twice", where, id)
			continue
		}
		seen[id] = true
		m.Packages = append(m.Packages, p)
	}
	var rest []*Package
	for id, p := range byID {
		if !seen[id] {
			rest = append(rest, p)
		}
	}
	sort.Slice(rest, func(i, j int) bool {
		a, b := strings.ToLower(rest[i].ID), strings.ToLower(rest[j].ID)
		if a != b {
			return a < b
		}
		return rest[i].ID < rest[j].ID
	})
	m.Packages = append(m.Packages, rest...)
	if len(m.Packages) == 0 {
		l.problem("%s: model %q has no packages", l.rel(dir), m.ID)
	}
	return m
}

func (l *loader) loadPackage(dir, id string) *Package {
	where := l.rel(filepath.Join(dir, PackageFile))
	b, err := os.ReadFile(filepath.Join(dir, PackageFile))
	if err != nil {
		l.problem("%s: %v", where, err)
		return nil
	}
	o, err := pyjson.DecodeObject(b)
	if err != nil {
		l.problem("%s: %v", where, err)
		return nil
	}
	c := cfg{o: o, where: where, l: l}
	p := &Package{ID: id, Dir: dir}
	mv, ok := o.Get("manifest")
	if !ok {
		l.problem("%s: \"manifest\" is required", where)
		return nil
	}
	if p.Manifest, ok = mv.(*pyjson.Object); !ok {
		l.problem("%s: \"manifest\" must be an object", where)
		return nil
	}
	p.Trusted = c.boolean("trusted_source")
	if v, ok := o.Get("model_features"); ok && v != nil {
		if _, isObj := v.(*pyjson.Object); !isObj {
			l.problem("%s: \"model_features\" must be an object or null", where)
		}
		p.Features = v
	}
	p.Recommended = c.recommended("recommended_parameters")
	files := l.packageFiles(c, dir)
	c.unknownKeys("manifest", "trusted_source", "model_features", "recommended_parameters", "files")
	p.Files = files
	handles := make([]string, 0, len(files))
	for _, f := range files {
		handles = append(handles, f.Handle)
	}
	if err := checkHandleSet(handles); err != nil {
		l.problem("%s: %v", l.rel(dir), err)
	}
	if len(files) == 0 {
		l.problem("%s: package has no files", l.rel(dir))
	}
	// Validate the manifest the way a client will parse it.
	entity := wireEntity(p, func(f *File) string { return "http://registry.invalid/files/x/" + f.Handle }, func(*File) string { return "00000000000000000000000000000000" })
	parsed, err := roboflow.ParsePackage(entity, "")
	var skip *roboflow.PackageSkipError
	switch {
	case err == nil:
		p.Parsed = parsed
	case errors.As(err, &skip) && skip.Reason == roboflow.SkipIgnored:
		l.warnings = append(l.warnings, fmt.Sprintf("%s: manifest type is ignored by clients; served as is", where))
	case errors.As(err, &skip) && skip.Reason == roboflow.SkipUnsupported:
		l.warnings = append(l.warnings, fmt.Sprintf("%s: manifest type unknown to this version (%v); served as is, current clients skip it", where, skip.Err))
	default:
		l.problem("%s: invalid manifest: %v", where, unwrapSkip(err))
	}
	return p
}

func unwrapSkip(err error) error {
	var skip *roboflow.PackageSkipError
	if errors.As(err, &skip) {
		return skip.Err
	}
	return err
}

// packageFiles resolves the file list: the explicit "files" list, or every
// regular file below files/.
func (l *loader) packageFiles(c cfg, dir string) []*File {
	filesDir := filepath.Join(dir, FilesDir)
	v, explicit := c.o.Get("files")
	if !explicit || v == nil {
		var out []*File
		err := filepath.WalkDir(filesDir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				return nil
			}
			rel, _ := filepath.Rel(filesDir, p)
			h := filepath.ToSlash(rel)
			if err := validHandle(h); err != nil {
				l.problem("%s: %v", l.rel(p), err)
				return nil
			}
			if f := l.source(p, h); f != nil {
				out = append(out, f)
			}
			return nil
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			l.problem("%s: %v", l.rel(filesDir), err)
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Handle < out[j].Handle })
		return out
	}
	list, ok := v.([]any)
	if !ok {
		l.problem("%s: \"files\" must be a list", c.where)
		return nil
	}
	var out []*File
	for i, e := range list {
		eo, ok := e.(*pyjson.Object)
		if !ok {
			l.problem("%s: files[%d] must be an object", c.where, i)
			continue
		}
		fc := cfg{o: eo, where: fmt.Sprintf("%s: files[%d]", c.where, i), l: l}
		h := fc.reqStr("handle")
		src := fc.optStr("source")
		fc.unknownKeys("handle", "source")
		if h == "" {
			continue
		}
		if err := validHandle(h); err != nil {
			l.problem("%s: files[%d]: %v", c.where, i, err)
			continue
		}
		var p string
		if src == nil {
			p = filepath.Join(filesDir, filepath.FromSlash(h))
		} else {
			if filepath.IsAbs(*src) || strings.Contains(*src, "\\") {
				l.problem("%s: files[%d]: source %q must be a relative path with '/' separators", c.where, i, *src)
				continue
			}
			if cl := filepath.Clean(filepath.FromSlash(*src)); cl == ".." || strings.HasPrefix(cl, ".."+string(filepath.Separator)) {
				l.problem("%s: files[%d]: source %q points outside the registry", c.where, i, *src)
				continue
			}
			p = filepath.Join(l.root, filepath.FromSlash(*src))
		}
		if f := l.source(p, h); f != nil {
			out = append(out, f)
		}
	}
	return out
}

// source checks that p is a regular file inside the registry (after
// resolving symlinks) and returns its File (MD5 computed later).
func (l *loader) source(p, handle string) *File {
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		l.problem("%s: file for handle %q: %v", l.rel(p), handle, err)
		return nil
	}
	if r, err := filepath.Rel(l.realRoot, real); err != nil || r == ".." || strings.HasPrefix(r, ".."+string(filepath.Separator)) {
		l.problem("%s: file for handle %q resolves outside the registry", l.rel(p), handle)
		return nil
	}
	st, err := os.Stat(real)
	if err != nil {
		l.problem("%s: %v", l.rel(p), err)
		return nil
	}
	if !st.Mode().IsRegular() {
		l.problem("%s: file for handle %q is not a regular file", l.rel(p), handle)
		return nil
	}
	return &File{Handle: handle, Path: real, Size: st.Size(), ModTime: st.ModTime()}
}

func (l *loader) checkDependencies(reg *Registry) {
	for _, m := range reg.Models {
		names := make([]string, 0, len(m.Dependencies))
		for _, d := range m.Dependencies {
			names = append(names, d.Name)
		}
		if err := validDependencyNames(names); err != nil {
			l.problem("%s: %v", l.rel(m.Dir), err)
		}
		for _, d := range m.Dependencies {
			if err := validModelID(d.ModelID); err != nil {
				l.problem("%s: dependency %q: %v", l.rel(m.Dir), d.Name, err)
				continue
			}
			dm, ok := reg.byID[d.ModelID]
			if !ok {
				l.warnings = append(l.warnings, fmt.Sprintf("%s: dependency %q refers to model %q, which this registry does not hold", l.rel(m.Dir), d.Name, d.ModelID))
				continue
			}
			if d.ModelPackageID != nil {
				found := false
				for _, p := range dm.Packages {
					found = found || p.ID == *d.ModelPackageID
				}
				if !found {
					l.problem("%s: dependency %q pins package %q, which model %q does not have", l.rel(m.Dir), d.Name, *d.ModelPackageID, dm.ID)
				}
			}
		}
	}
}

// hashAll computes every file's MD5 once (files shared by several packages
// are read once) and fills the blob index.
func (l *loader) hashAll(ctx context.Context, reg *Registry, workers int) error {
	byPath := map[string][]*File{}
	var paths []string
	for _, m := range reg.Models {
		for _, p := range m.Packages {
			for _, f := range p.Files {
				if _, ok := byPath[f.Path]; !ok {
					paths = append(paths, f.Path)
				}
				byPath[f.Path] = append(byPath[f.Path], f)
			}
		}
	}
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	type result struct {
		path string
		sum  string
		err  error
	}
	jobs := make(chan string)
	results := make(chan result)
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range jobs {
				sum, err := md5File(p)
				results <- result{p, sum, err}
			}
		}()
	}
	go func() {
		defer close(jobs)
		for _, p := range paths {
			select {
			case jobs <- p:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() { wg.Wait(); close(results) }()
	for r := range results {
		if r.err != nil {
			l.problem("%s: %v", l.rel(r.path), r.err)
			continue
		}
		for _, f := range byPath[r.path] {
			f.MD5 = r.sum
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	for _, m := range reg.Models {
		for _, p := range m.Packages {
			for _, f := range p.Files {
				if _, ok := reg.blobs[f.MD5]; !ok && f.MD5 != "" {
					reg.blobs[f.MD5] = f
				}
			}
		}
	}
	return nil
}

func md5File(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := md5.New()
	if _, err := io.CopyBuffer(h, f, make([]byte, 1<<20)); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
