package maintain

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"time"

	"github.com/modelcache/modelcache/internal/cache"
	"github.com/modelcache/modelcache/internal/layout"
	"github.com/modelcache/modelcache/internal/manifest"
)

// PackageSummary is one package dir with its sizes. Sizes are apparent sizes
// (du -b): DirBytes is `du -sb <dir>` (links count as their own length),
// BlobBytes the blobs its links lead to, each once.
type PackageSummary struct {
	ModelID          string             `json:"model_id"`
	Slug             string             `json:"slug"`
	PackageID        string             `json:"package_id"`
	Dir              string             `json:"dir"`
	State            cache.PackageState `json:"state"`
	Error            string             `json:"error,omitempty"`
	CanonicalModelID *string            `json:"canonical_model_id"`
	Backend          *string            `json:"backend"`
	Quantization     *string            `json:"quantization"`
	// SizeBytes = DirBytes + BlobBytes: what the package occupies.
	SizeBytes int64 `json:"size_bytes"`
	DirBytes  int64 `json:"dir_bytes"`
	BlobBytes int64 `json:"blob_bytes"`
	// SharedBytes are the BlobBytes other packages link to as well (freed
	// only when they go too).
	SharedBytes int64 `json:"shared_bytes"`
	Blobs       int   `json:"blobs"`
	// LastUsed is the mtime of .meta/last-used/<slug>/<package_id>.
	LastUsed *time.Time `json:"last_used"`
}

// ModelSummary is one model cache root.
type ModelSummary struct {
	ModelID string `json:"model_id"`
	Slug    string `json:"slug"`
	Dir     string `json:"dir"`
	// SizeBytes = DirBytes + BlobBytes.
	SizeBytes int64 `json:"size_bytes"`
	// DirBytes is `du -sb <model dir>`.
	DirBytes int64 `json:"dir_bytes"`
	// BlobBytes: distinct blobs its packages link to.
	BlobBytes int64 `json:"blob_bytes"`
	// SharedBytes: BlobBytes that packages of other models link to as well.
	SharedBytes int64            `json:"shared_bytes"`
	LastUsed    *time.Time       `json:"last_used"`
	Packages    []PackageSummary `json:"packages"`
}

// Listing is the result of List.
type Listing struct {
	Home   string         `json:"home"`
	Models []ModelSummary `json:"models"`
	// TotalBytes: every model dir plus every linked blob, each blob once.
	TotalBytes int64 `json:"total_bytes"`
	// Problems: top-level directories that are not walked (symlinks).
	Problems []Problem `json:"problems,omitempty"`
}

// List describes every model and package in the cache: one parallel walk
// of models-cache (sizes come from the same walk), each blob counted once.
func (m *Maintainer) List(ctx context.Context) (*Listing, error) {
	inv, err := m.scanForList(ctx)
	if err != nil {
		return nil, err
	}
	defer inv.t.close()
	out := &Listing{Home: m.home.Root, Models: []ModelSummary{}, Problems: inv.t.problems()}
	allBlobs := map[string]bool{}
	for _, ms := range inv.Models {
		sum := ModelSummary{Slug: ms.Slug, Dir: ms.Dir, DirBytes: ms.Bytes}
		seen := map[string]bool{}
		for _, p := range ms.Packages {
			if !p.Valid {
				continue
			}
			if sum.ModelID == "" {
				sum.ModelID = p.ModelID
			}
			ps := inv.summarize(p)
			sum.Packages = append(sum.Packages, ps)
			if lu := ps.LastUsed; lu != nil && (sum.LastUsed == nil || lu.After(*sum.LastUsed)) {
				sum.LastUsed = lu
			}
			for _, md5 := range p.Blobs {
				b := inv.Blobs[md5]
				if b == nil || seen[md5] {
					continue
				}
				seen[md5] = true
				sum.BlobBytes += b.Size
				for _, u := range inv.Users[md5] {
					if u.Slug != ms.Slug {
						sum.SharedBytes += b.Size
						break
					}
				}
				if !allBlobs[md5] {
					allBlobs[md5] = true
					out.TotalBytes += b.Size
				}
			}
		}
		if len(sum.Packages) == 0 || !slugPattern.MatchString(ms.Slug) {
			continue
		}
		sum.SizeBytes = sum.DirBytes + sum.BlobBytes
		out.TotalBytes += sum.DirBytes
		out.Models = append(out.Models, sum)
	}
	sort.SliceStable(out.Models, func(i, j int) bool {
		a, b := out.Models[i], out.Models[j]
		if a.ModelID != b.ModelID {
			return a.ModelID < b.ModelID
		}
		return a.Slug < b.Slug
	})
	return out, nil
}

func (inv *inventory) summarize(p *pkgScan) PackageSummary {
	s := PackageSummary{
		ModelID: p.ModelID, Slug: p.Slug, PackageID: p.PackageID, Dir: p.Dir, State: p.State,
		DirBytes: p.DirBytes, LastUsed: p.LastUsed,
	}
	if p.Err != nil {
		s.Error = p.Err.Error()
	}
	if mf := p.Manifest; mf != nil {
		s.CanonicalModelID, s.Backend, s.Quantization = mf.CanonicalModelID, mf.BackendType, mf.Quantization
	}
	for _, md5 := range p.Blobs {
		b := inv.Blobs[md5]
		if b == nil {
			continue
		}
		s.Blobs++
		s.BlobBytes += b.Size
		if len(inv.Users[md5]) > 1 {
			s.SharedBytes += b.Size
		}
	}
	s.SizeBytes = s.DirBytes + s.BlobBytes
	return s
}

// FileDetail is one file of a package as found on disk.
type FileDetail struct {
	// Path is relative to the package dir.
	Path string `json:"path"`
	// Kind: link, file, dir, other or missing.
	Kind string `json:"kind"`
	// Declared: the manifest lists it (as an artefact or a dependency link).
	Declared bool   `json:"declared"`
	Storage  string `json:"storage,omitempty"`
	MD5      string `json:"md5,omitempty"`
	// Size of the file itself (for a link: its text length, as du -b).
	Size int64 `json:"size"`
	// Link fields.
	LinkText string `json:"link_text,omitempty"`
	Blob     string `json:"blob,omitempty"`
	// BlobBytes of the blob a link leads to (-1 when the blob is missing).
	BlobBytes int64 `json:"blob_bytes,omitempty"`
	// LinkState: blob, dangling, outside-cache or inside-cache (another
	// file of this cache).
	LinkState string `json:"link_state,omitempty"`
}

// PackageDetail is a package with its files.
type PackageDetail struct {
	PackageSummary
	ModelArchitecture *string      `json:"model_architecture"`
	TaskType          *string      `json:"task_type"`
	TrustedSource     *bool        `json:"trusted_source"`
	Files             []FileDetail `json:"files"`
	// Dependencies are the recorded dependency identities.
	Dependencies []manifest.DependencyPath `json:"dependencies"`
}

// EntrySummary is one auto-resolution entry.
type EntrySummary struct {
	Key            string  `json:"key"`
	Path           string  `json:"path"`
	ModelID        string  `json:"model_id"`
	CacheModelID   *string `json:"cache_model_id"`
	ModelPackageID string  `json:"model_package_id"`
	CreatedAt      string  `json:"created_at"`
	Expired        bool    `json:"expired"`
	Size           int64   `json:"size"`
}

// OfflineRecordSummary is an offline-weights record and its packages' presence.
type OfflineRecordSummary struct {
	Path             string                  `json:"path"`
	CanonicalModelID string                  `json:"canonical_model_id"`
	Aliases          []string                `json:"aliases"`
	Source           *string                 `json:"source"`
	RecordedAt       *time.Time              `json:"recorded_at"`
	Packages         []OfflinePackageSummary `json:"packages"`
	SharedAliases    []string                `json:"shared_aliases,omitempty"`
}

// OfflinePackageSummary is one recorded package (offline.md §5 statuses).
type OfflinePackageSummary struct {
	PackageID    *string    `json:"package_id"`
	Presence     string     `json:"presence"`
	MissingFiles []string   `json:"missing_files,omitempty"`
	LastProvenAt *time.Time `json:"last_proven_at"`
}

// ModelDetail is the result of Show.
type ModelDetail struct {
	ModelID  string                 `json:"model_id"`
	Slug     string                 `json:"slug"`
	Dir      string                 `json:"dir"`
	Packages []PackageDetail        `json:"packages"`
	Entries  []EntrySummary         `json:"entries"`
	Offline  []OfflineRecordSummary `json:"offline_records"`
	// Problems: top-level directories that are not walked (symlinks).
	Problems []Problem `json:"problems,omitempty"`
}

// NotFoundError: the cache holds nothing for a model id.
type NotFoundError struct{ ModelID string }

func (e *NotFoundError) Error() string {
	return fmt.Sprintf("model %q: no packages, auto-resolution entries or offline records in the cache (see `modelcache ls`)", e.ModelID)
}

// Show describes one model: its packages and their files and links, the
// auto-resolution entries naming it and its offline record. Packages of
// another cache owner recorded under modelID (an alias) are included.
func (m *Maintainer) Show(ctx context.Context, modelID string) (*ModelDetail, error) {
	slug, err := layout.Slug(modelID)
	if err != nil {
		return nil, err
	}
	dir, err := m.home.ModelDir(modelID)
	if err != nil {
		return nil, err
	}
	inv, err := m.scanModel(ctx, modelID)
	if err != nil {
		return nil, err
	}
	defer inv.t.close()
	out := &ModelDetail{ModelID: modelID, Slug: slug, Dir: dir, Packages: []PackageDetail{}, Entries: []EntrySummary{},
		Offline: []OfflineRecordSummary{}, Problems: inv.t.problems()}
	for _, p := range inv.modelPackages(modelID) {
		out.Packages = append(out.Packages, inv.detail(p))
	}
	for _, e := range inv.Entries {
		if e.Entry == nil || !entryNames(e.Entry, modelID) {
			continue
		}
		out.Entries = append(out.Entries, EntrySummary{
			Key: e.Key, Path: e.Path, ModelID: e.Entry.ModelID, CacheModelID: e.Entry.CacheModelID,
			ModelPackageID: e.Entry.ModelPackageID, CreatedAt: e.Entry.CreatedAt.String(), Expired: e.Expired, Size: e.node.Size,
		})
	}
	for _, r := range inv.recordsNaming(modelID) {
		out.Offline = append(out.Offline, recordSummary(r))
	}
	if len(out.Packages) == 0 && len(out.Entries) == 0 && len(out.Offline) == 0 {
		return nil, &NotFoundError{ModelID: modelID}
	}
	return out, nil
}

// modelPackages: the packages under slug(modelID), then those that records
// naming modelID place under another owner.
func (inv *inventory) modelPackages(modelID string) []*pkgScan {
	out, _ := inv.packagesOf(modelID)
	seen := map[*pkgScan]bool{}
	for _, p := range out {
		seen[p] = true
	}
	for _, r := range inv.recordsNaming(modelID) {
		for _, rp := range r.Packages {
			slug, err := layout.Slug(rp.Owner)
			if err != nil {
				continue
			}
			for _, p := range inv.Packages {
				if p.Slug == slug && p.PackageID == rp.PackageID && !seen[p] {
					seen[p] = true
					out = append(out, p)
				}
			}
		}
	}
	return out
}

func recordSummary(r *recordScan) OfflineRecordSummary {
	s := OfflineRecordSummary{Path: r.Record.Path, Aliases: r.Record.RequestedAliases(), Packages: []OfflinePackageSummary{}}
	s.CanonicalModelID, _ = r.Record.CanonicalModelID()
	if src, ok := r.Record.Source(); ok {
		s.Source = &src
	}
	if t, ok := r.Record.RecordedAt(); ok {
		s.RecordedAt = &t
	}
	if st := r.Status; st != nil {
		s.SharedAliases = st.SharedAliases
		for _, p := range st.Packages {
			op := OfflinePackageSummary{PackageID: p.PackageID, Presence: string(p.Presence), MissingFiles: p.MissingFiles}
			if p.PackageID != nil {
				if t, ok := st.Proven[*p.PackageID]; ok {
					op.LastProvenAt = &t
				}
			}
			s.Packages = append(s.Packages, op)
		}
	}
	return s
}

func (inv *inventory) detail(p *pkgScan) PackageDetail {
	d := PackageDetail{PackageSummary: inv.summarize(p), Files: []FileDetail{}, Dependencies: []manifest.DependencyPath{}}
	declared := map[string]manifest.Artifact{}
	deps := map[string]bool{}
	if mf := p.Manifest; mf != nil {
		d.ModelArchitecture, d.TaskType, d.TrustedSource = mf.ModelArchitecture, mf.TaskType, mf.TrustedSource
		for _, a := range mf.PackageArtifacts {
			declared[a.FileHandle] = a
		}
		for _, dp := range mf.DependencyPackagePaths {
			deps[filepath.Join(layout.DependenciesDir, dp.Name)] = true
			d.Dependencies = append(d.Dependencies, dp)
		}
	}
	present := map[string]bool{}
	for _, n := range p.Nodes {
		if n.Rel == "." {
			continue
		}
		present[n.Rel] = true
		if n.Mode.IsDir() || isBookkeeping(filepath.Base(n.Rel)) {
			continue
		}
		fd := FileDetail{Path: n.Rel, Size: n.Size, Kind: nodeKind(n)}
		if a, ok := declared[n.Rel]; ok {
			fd.Declared, fd.Storage = true, string(a.Storage)
			if a.MD5Hash != nil {
				fd.MD5 = *a.MD5Hash
			}
		}
		if deps[n.Rel] || n.Rel == layout.ManifestFile {
			fd.Declared = true
		}
		if n.isLink() {
			li := p.Links[n.Rel]
			fd.LinkText = n.LinkText
			switch {
			case li.OurBlob:
				fd.Blob, fd.LinkState, fd.BlobBytes = li.BlobMD5, "blob", -1
				if b := inv.Blobs[li.BlobMD5]; b != nil {
					fd.BlobBytes = b.Size
				} else {
					fd.LinkState = "dangling"
				}
			case !li.Inside:
				fd.LinkState = "outside-cache"
			default:
				// Checked without following any link on the way.
				fd.LinkState = "inside-cache"
				if _, err := inv.t.lstatRel(li.Rel); errors.Is(err, fs.ErrNotExist) {
					fd.LinkState = "dangling"
				}
			}
		}
		d.Files = append(d.Files, fd)
	}
	for h, a := range declared {
		if present[h] {
			continue
		}
		fd := FileDetail{Path: h, Kind: "missing", Declared: true, Storage: string(a.Storage)}
		if a.MD5Hash != nil {
			fd.MD5 = *a.MD5Hash
		}
		d.Files = append(d.Files, fd)
	}
	sort.Slice(d.Files, func(i, j int) bool { return d.Files[i].Path < d.Files[j].Path })
	return d
}

// isBookkeeping: lock files and transient names are not package files.
func isBookkeeping(name string) bool {
	k, _ := classifyTemp(name)
	return k != "" || lockNameRE.MatchString(name)
}

func nodeKind(n node) string {
	switch {
	case n.isLink():
		return "link"
	case n.isRegular():
		return "file"
	case n.Mode.IsDir():
		return "dir"
	}
	return "other"
}
