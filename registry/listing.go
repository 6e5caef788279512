package registry

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// Listing is what `modelcache registry ls --json` prints.
type Listing struct {
	Models []ListedModel `json:"models"`
}

// ListedModel is one model of a Listing.
type ListedModel struct {
	ModelID  string          `json:"model_id"`
	Aliases  []string        `json:"aliases"`
	Packages []ListedPackage `json:"packages"`
}

// ListedPackage is one package of a ListedModel. Backend and Quantization
// are nil for manifest types clients skip.
type ListedPackage struct {
	PackageID    string       `json:"package_id"`
	Backend      *string      `json:"backend"`
	Quantization *string      `json:"quantization"`
	Files        []ListedFile `json:"files"`
}

// ListedFile is one file of a ListedPackage.
type ListedFile struct {
	FileHandle string `json:"file_handle"`
	Size       int64  `json:"size"`
	MD5        string `json:"md5"`
}

// Listing describes the registry's content, models sorted by id, packages
// in announcement order.
func (r *Registry) Listing() Listing {
	out := Listing{Models: []ListedModel{}}
	for _, m := range r.Models {
		lm := ListedModel{ModelID: m.ID, Aliases: append([]string{}, m.Aliases...), Packages: []ListedPackage{}}
		for _, p := range m.Packages {
			lp := ListedPackage{PackageID: p.ID, Files: []ListedFile{}}
			if p.Parsed != nil {
				b, q := string(p.Parsed.Backend), string(p.Parsed.Quantization)
				lp.Backend = &b
				if q != "" {
					lp.Quantization = &q
				}
			}
			for _, f := range p.Files {
				lp.Files = append(lp.Files, ListedFile{FileHandle: f.Handle, Size: f.Size, MD5: f.MD5})
			}
			lm.Packages = append(lm.Packages, lp)
		}
		out.Models = append(out.Models, lm)
	}
	return out
}

// WriteTable prints the listing for humans.
func (l Listing) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MODEL\tALIASES\tPACKAGE\tBACKEND\tQUANT\tFILES\tBYTES")
	deref := func(s *string) string {
		if s == nil {
			return "-"
		}
		return *s
	}
	for _, m := range l.Models {
		aliases := strings.Join(m.Aliases, ",")
		if aliases == "" {
			aliases = "-"
		}
		for _, p := range m.Packages {
			var size int64
			for _, f := range p.Files {
				size += f.Size
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\n", m.ModelID, aliases, p.PackageID, deref(p.Backend), deref(p.Quantization), len(p.Files), size)
		}
	}
	return tw.Flush()
}
