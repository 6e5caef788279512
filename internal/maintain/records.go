package maintain

import (
	"context"
	"errors"
	"io/fs"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/modelcache/modelcache/internal/layout"
	"github.com/modelcache/modelcache/internal/offlinereg"
	"github.com/modelcache/modelcache/internal/pyjson"
)

var quotedMD5RE = regexp.MustCompile(`"([0-9a-f]{32})"`)

func (m *Maintainer) scanRecords(ctx context.Context, inv *inventory) error {
	t := inv.t
	if err := t.unsafe[topRecords]; err != nil {
		inv.RecordErr = err
		return nil
	}
	d := t.dir(topRecords)
	if d == nil {
		return nil
	}
	ents, err := d.Entries()
	if err != nil {
		return err
	}
	var names []string
	for _, e := range ents {
		if !strings.HasPrefix(e.Name, ".") && strings.HasSuffix(e.Name, ".json") {
			names = append(names, e.Name)
		}
	}
	sort.Strings(names) // code-point order, as Python's sorted(os.listdir())
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := d.Join(name)
		data, id, err := d.ReadFile(name, maxEntryFile)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				m.log.Warn("Could not read offline-weights registry record; ignoring it", "path", p, "error", err)
			}
			continue
		}
		for _, mm := range quotedMD5RE.FindAllSubmatch(data, -1) {
			inv.RecordMD5s[string(mm[1])] = true
		}
		r, err := offlinereg.ParseRecord(data)
		if err != nil {
			m.log.Warn("Could not read offline-weights registry record; ignoring it", "path", p, "error", err)
			continue
		}
		r.Path = p
		rs := &recordScan{Record: r, node: nodeOf(p, id)}
		canonical, _ := r.CanonicalModelID()
		pv, _ := r.Doc.Get("packages")
		list, _ := pv.([]any)
		for _, pk := range list {
			o, ok := pk.(*pyjson.Object)
			if !ok {
				continue
			}
			rp := recordPackage{Owner: canonical}
			rp.PackageID, _ = getString(o, "package_id")
			if owner, ok := getString(o, "cache_model_id"); ok && owner != "" {
				rp.Owner = owner
			}
			av, _ := o.Get("artifacts")
			arts, _ := av.([]any)
			for _, a := range arts {
				if ao, ok := a.(*pyjson.Object); ok {
					if md5, ok := getString(ao, "md5_hash"); ok && md5NameRE.MatchString(md5) {
						rp.MD5s = append(rp.MD5s, md5)
					}
				}
			}
			rs.Packages = append(rs.Packages, rp)
		}
		inv.Records = append(inv.Records, rs)
	}
	return nil
}

func getString(o *pyjson.Object, key string) (string, bool) {
	v, _ := o.Get(key)
	s, ok := v.(string)
	return s, ok
}

// recordPresence computes each record's status (offline.md §5) from the
// walked packages: a package is present when its dir is a real directory and
// each artefact a regular file or a link to a present blob of this cache;
// nothing is followed.
func (inv *inventory) recordPresence() {
	byRel := map[string]*pkgScan{}
	for _, p := range inv.Packages {
		byRel[p.Slug+"/"+p.PackageID] = p
	}
	claims := map[string]int{}
	for _, r := range inv.Records {
		seen := map[string]bool{}
		for _, a := range r.Record.RequestedAliases() {
			if !seen[a] {
				seen[a] = true
				claims[a]++
			}
		}
	}
	for _, r := range inv.Records {
		canonical, ok := r.Record.CanonicalModelID()
		if !ok {
			continue
		}
		st := &offlinereg.ModelStatus{Path: r.Record.Path, CanonicalModelID: canonical,
			RequestedAliases: r.Record.RequestedAliases(), Proven: provenTimes(r.Record)}
		for _, a := range st.RequestedAliases {
			if claims[a] > 1 {
				st.SharedAliases = append(st.SharedAliases, a)
			}
		}
		pv, _ := r.Record.Doc.Get("packages")
		list, _ := pv.([]any)
		for _, payload := range list {
			st.Packages = append(st.Packages, inv.packageStatus(canonical, payload, byRel))
		}
		r.Status = st
	}
}

func (inv *inventory) packageStatus(canonical string, payload any, byRel map[string]*pkgScan) offlinereg.PackageStatus {
	o, ok := payload.(*pyjson.Object)
	if !ok {
		return offlinereg.PackageStatus{Presence: offlinereg.PresenceMalformed}
	}
	var st offlinereg.PackageStatus
	id, ok := getString(o, "package_id")
	if !ok {
		st.Presence = offlinereg.PresenceMalformed
		return st
	}
	st.PackageID = &id
	if tv, _ := o.Get("trusted_source"); tv != nil {
		if b, ok := tv.(bool); ok {
			st.TrustedSource = &b
		}
	}
	owner := canonical
	if cv, _ := o.Get("cache_model_id"); cv != nil && cv != "" && cv != false {
		s, ok := cv.(string)
		if !ok {
			st.Presence = offlinereg.PresenceMissing
			return st
		}
		owner = s
	}
	slug, err := layout.Slug(owner)
	p := byRel[slug+"/"+id]
	if err != nil || p == nil {
		st.Presence = offlinereg.PresenceMissing
		return st
	}
	nodes := map[string]node{}
	for _, n := range p.Nodes {
		nodes[n.Rel] = n
	}
	av, _ := o.Get("artifacts")
	list, _ := av.([]any)
	for _, a := range list {
		ao, ok := a.(*pyjson.Object)
		if !ok {
			st.Presence = offlinereg.PresenceMalformed
			return st
		}
		handle, ok := getString(ao, "file_handle")
		if !ok {
			st.Presence = offlinereg.PresenceMalformed
			return st
		}
		n, found := nodes[handle]
		present := found && layout.ValidateHandle(handle) == nil
		if present && n.isLink() {
			li := p.Links[handle]
			present = li.OurBlob && inv.Blobs[li.BlobMD5] != nil
		} else if present {
			present = n.isRegular()
		}
		if !present {
			st.MissingFiles = append(st.MissingFiles, handle)
		}
	}
	st.Presence = offlinereg.PresenceOK
	if len(st.MissingFiles) > 0 {
		st.Presence = offlinereg.PresenceIncomplete
	}
	return st
}

// provenTimes flattens a record's proven to package id -> time; values may
// be {"last_proven_at": iso} or a bare ISO string (older writers).
func provenTimes(rec *offlinereg.Record) map[string]time.Time {
	out := map[string]time.Time{}
	v, _ := rec.Doc.Get("proven")
	m, ok := v.(*pyjson.Object)
	if !ok {
		return out
	}
	for _, id := range m.Keys() {
		proof, _ := m.Get(id)
		if po, ok := proof.(*pyjson.Object); ok {
			proof, _ = po.Get("last_proven_at")
		}
		if s, ok := proof.(string); ok {
			if t, ok := offlinereg.ParseTimestamp(s); ok {
				out[id] = t
			}
		}
	}
	return out
}

// recordsNaming returns the records whose canonical id or aliases are
// modelID, or that record a package in a dir owned by modelID.
func (inv *inventory) recordsNaming(modelID string) []*recordScan {
	var out []*recordScan
	for _, r := range inv.Records {
		c, _ := r.Record.CanonicalModelID()
		hit := c == modelID || r.Record.HasAlias(modelID)
		for _, p := range r.Packages {
			hit = hit || p.Owner == modelID
		}
		if hit {
			out = append(out, r)
		}
	}
	return out
}
