package maintain

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"

	"github.com/modelcache/modelcache/internal/cache"
	"github.com/modelcache/modelcache/internal/fsx"
	"github.com/modelcache/modelcache/internal/layout"
	"github.com/modelcache/modelcache/internal/manifest"
)

// checkPackage verifies one package dir, repairing under its
// materialization lock when asked.
func (v *verifier) checkPackage(ctx context.Context, p *pkgScan) {
	v.rep.Packages++
	var findings []Finding
	add := func(f Finding) {
		f.Package = p.Dir
		findings = append(findings, f)
	}
	declared := map[string]bool{}
	switch p.State {
	case cache.StateBroken:
		add(Finding{Kind: FindManifestBroken, Path: manifest.Path(p.Dir), Detail: fmt.Sprint(p.Err) +
			"; remove the package (`modelcache purge`) so the next load materializes it again"})
	case cache.StatePartial:
		v.rep.PartialPackages = append(v.rep.PartialPackages, p.Dir)
	}
	if mf := p.Manifest; mf != nil && p.State == cache.StateComplete {
		for _, a := range mf.PackageArtifacts {
			declared[a.FileHandle] = true
			v.rep.Files++
			if f, ok := v.checkArtifact(ctx, p, a); !ok {
				add(f)
			}
		}
		for _, dp := range mf.DependencyPackagePaths {
			declared[layout.DependenciesDir+"/"+dp.Name] = true
			if f, ok := v.checkDependency(p, dp); !ok {
				add(f)
			}
		}
	}
	// Links nobody declared that lead out of the cache: planted, reported.
	rels := make([]string, 0, len(p.Links))
	for rel := range p.Links {
		rels = append(rels, rel)
	}
	sort.Strings(rels)
	for _, rel := range rels {
		li := p.Links[rel]
		if declared[rel] || li.Inside {
			continue
		}
		add(Finding{Kind: FindOutsideLink, Path: p.Dir + "/" + rel, Handle: rel,
			Detail: "undeclared symlink leading outside the cache; never followed, not removed by repair"})
	}
	if v.opts.Repair && needsRepair(findings) {
		v.repairPackage(ctx, p, findings)
	}
	for _, f := range findings {
		v.rep.add(f)
	}
}

func needsRepair(fs []Finding) bool {
	for _, f := range fs {
		switch f.Kind {
		case FindWrongLink, FindFileInLinkPlace, FindFileMismatch, FindDependency:
			return true
		case FindOutsideLink:
			if f.MD5 != "" {
				return true
			}
		}
	}
	return false
}

// handleNode returns the walked node of a handle; err reports a parent that
// is not a real directory (a symlink: never followed).
func (p *pkgScan) handleNode(handle string) (node, bool, error) {
	segs := strings.Split(handle, "/")
	byRel := p.nodeIndex()
	for i := 1; i < len(segs); i++ {
		parent := strings.Join(segs[:i], "/")
		n, ok := byRel[parent]
		if !ok {
			return node{}, false, nil
		}
		if !n.Mode.IsDir() {
			return node{}, false, &fsx.UnsafePathError{Op: "enter", Path: p.Dir + "/" + parent, Kind: kindOfMode(n.Mode)}
		}
	}
	n, ok := byRel[handle]
	return n, ok, nil
}

func (p *pkgScan) nodeIndex() map[string]node {
	if p.byRel == nil {
		p.byRel = make(map[string]node, len(p.Nodes))
		for _, n := range p.Nodes {
			p.byRel[n.Rel] = n
		}
	}
	return p.byRel
}

// checkArtifact verifies one declared artefact.
func (v *verifier) checkArtifact(ctx context.Context, p *pkgScan, a manifest.Artifact) (Finding, bool) {
	path, err := layout.HandlePath(p.Dir, a.FileHandle)
	if err != nil {
		return Finding{Kind: FindManifestBroken, Path: p.Dir, Handle: a.FileHandle, Detail: err.Error()}, false
	}
	f := Finding{Path: path, Handle: a.FileHandle}
	if a.MD5Hash != nil {
		f.MD5 = *a.MD5Hash
	}
	n, ok, err := p.handleNode(a.FileHandle)
	if err != nil {
		f.Kind, f.Detail = FindNotAFile, "a parent directory of the handle is not a real directory; never followed: "+err.Error()
		return f, false
	}
	if !ok {
		f.Kind, f.Detail = FindMissingFile, "declared file is absent; the next online load downloads it"
		return f, false
	}
	if a.Storage == manifest.StorageSharedBlob && a.MD5Hash != nil {
		return v.checkBlobLink(ctx, p, n, f)
	}
	if !n.isRegular() {
		f.Kind, f.Detail = FindNotAFile, fmt.Sprintf("a package file is a %s; never followed", describeMode(n.Mode))
		if li, ok := p.Links[a.FileHandle]; ok && !li.Inside {
			f.Kind = FindOutsideLink
		}
		return f, false
	}
	sum, sha, id, err := v.hashFile(ctx, p, a.FileHandle)
	v.rep.BytesHashed += id.Size
	if err != nil {
		f.Kind, f.Detail = FindNotAFile, err.Error()
		return f, false
	}
	switch {
	case a.Unhashed && a.SHA256Hash != nil && sha != *a.SHA256Hash:
		f.Kind, f.Detail = FindFileMismatch, fmt.Sprintf("SHA-256 %s, manifest says %s", sha, *a.SHA256Hash)
		return f, false
	case !a.Unhashed && a.MD5Hash != nil && sum != *a.MD5Hash:
		f.Kind, f.Detail = FindFileMismatch, fmt.Sprintf("MD5 %s, manifest says %s", sum, *a.MD5Hash)
		return f, false
	}
	return f, true
}

func describeMode(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m.IsDir():
		return "directory"
	}
	return "special file"
}

// checkBlobLink: the handle is a symlink whose text leads (lexically, from
// a real directory, through the real shared-blobs) to the blob, and the
// blob verified (§7 step 6, §11.1).
func (v *verifier) checkBlobLink(ctx context.Context, p *pkgScan, n node, f Finding) (Finding, bool) {
	md5 := f.MD5
	if n.isRegular() {
		f.Kind = FindFileInLinkPlace
		f.Detail = "a regular file sits where the link to blob " + md5 + " belongs (the reference fails this package until fixed)"
		return f, false
	}
	if !n.isLink() {
		f.Kind, f.Detail = FindNotAFile, "a "+describeMode(n.Mode)+" sits where the link to blob "+md5+" belongs"
		return f, false
	}
	li := p.Links[f.Handle]
	if !li.Inside {
		f.Kind, f.Detail = FindOutsideLink, "link leads outside the cache instead of to blob "+md5+"; never followed"
		return f, false
	}
	verdict := v.verdict(ctx, md5)
	if !li.OurBlob || li.BlobMD5 != md5 {
		f.Kind, f.Detail = FindWrongLink, "link does not lead to blob "+md5
		return f, false
	}
	if errors.Is(verdict, errBlobMissing) {
		f.Kind, f.Detail = FindMissingBlob, "blob "+md5+" is missing; the next online load downloads it again"
		return f, false
	}
	// A corrupt blob is reported once, on the blob itself.
	return f, true
}

// checkDependency: the link's text leads to the recorded target, inside
// the cache, whose manifest still has the recorded hash (§11.2).
func (v *verifier) checkDependency(p *pkgScan, dp manifest.DependencyPath) (Finding, bool) {
	link, err := layout.DependencyLinkPath(p.Dir, dp.Name)
	if err != nil {
		return Finding{Kind: FindManifestBroken, Path: p.Dir, Detail: err.Error()}, false
	}
	handle := layout.DependenciesDir + "/" + dp.Name
	f := Finding{Kind: FindDependency, Path: link, Handle: handle}
	n, ok, err := p.handleNode(handle)
	switch {
	case err != nil:
		f.Detail = "model_dependencies is not a real directory; never followed: " + err.Error()
		return f, false
	case !ok:
		f.Detail = "dependency link is missing"
		return f, false
	case !n.isLink():
		f.Detail = "not a symlink where the dependency link belongs"
		return f, false
	}
	target, inside := v.inv.relOf(dp.TargetPath)
	if !inside {
		f.Detail = "recorded target " + dp.TargetPath + " is outside the cache (was the cache moved?); not read"
		return f, false
	}
	li := p.Links[handle]
	if !li.Inside || !li.Exact || li.Rel != target {
		f.Detail = fmt.Sprintf("link leads to %q, recorded target is %s", li.Resolved, dp.TargetPath)
		return f, false
	}
	h, err := v.inv.manifestHashAt(target)
	if err != nil {
		f.Detail = "dependency manifest: " + err.Error()
		return f, false
	}
	if h != dp.PackageManifestHash {
		f.Detail = fmt.Sprintf("dependency manifest hash %s, recorded %s: the dependency changed; purge this package to re-materialize it", h, dp.PackageManifestHash)
		return f, false
	}
	return f, true
}

// relOf maps an absolute path written by a writer (H as written, or its
// realpath) to its place relative to H.
func (inv *inventory) relOf(abs string) (string, bool) {
	abs = filepath.Clean(abs)
	for _, root := range []string{inv.RealHome, filepath.Clean(inv.Home.Root)} {
		if rel, ok := relWithin(abs, root); ok && rel != "." && exactText(rel) {
			return rel, true
		}
	}
	return "", false
}

// manifestHashAt returns the content hash of the manifest of the package
// dir H/<rel>, from the scan when it walked that dir, else read through
// descriptors.
func (inv *inventory) manifestHashAt(rel string) (string, error) {
	for _, p := range inv.Packages {
		if p.Rel == rel {
			if p.Manifest == nil {
				if p.Err != nil {
					return "", p.Err
				}
				return "", fmt.Errorf("%s has no manifest", p.Dir)
			}
			return p.Manifest.ContentHash(), nil
		}
	}
	d, err := inv.t.openRel(rel)
	if err != nil {
		return "", err
	}
	defer d.Close()
	data, _, err := d.ReadFile(layout.ManifestFile, maxEntryFile)
	if err != nil {
		return "", err
	}
	mf, err := manifest.Parse(data)
	if err != nil {
		return "", err
	}
	return mf.ContentHash(), nil
}
