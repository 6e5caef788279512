package xray

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/modelcache/modelcache/internal/pep440"
)

func readDir(fsys fs.FS, dir string) ([]string, error) {
	entries, err := fs.ReadDir(fsys, strings.TrimPrefix(dir, "/"))
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names, nil
}

// dpkgRow is one installed Debian package.
type dpkgRow struct{ name, version string }

// dpkgList is the package list `dpkg -l` prints (sorted by name), read from
// dpkg itself or, without it, from /var/lib/dpkg/status.
type dpkgList struct {
	rows   []dpkgRow
	source string
}

func (p *prober) dpkgPackages(ctx context.Context) dpkgList {
	if out, err := p.run(ctx, "dpkg", "-l"); err == nil {
		var l dpkgList
		l.source = "dpkg -l"
		sc := bufio.NewScanner(bytes.NewReader(out))
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) < 3 || len(f[0]) != 2 && len(f[0]) != 3 || !strings.ContainsAny(f[0][:1], "uihrp") {
				continue
			}
			l.rows = append(l.rows, dpkgRow{name: f[1], version: f[2]})
		}
		return l
	}
	b, err := p.readFile("/var/lib/dpkg/status")
	if err != nil {
		return dpkgList{source: "no dpkg"}
	}
	var l dpkgList
	l.source = "/var/lib/dpkg/status"
	for _, stanza := range strings.Split(string(b), "\n\n") {
		var row dpkgRow
		installed := false
		for _, line := range strings.Split(stanza, "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok || strings.HasPrefix(line, " ") {
				continue
			}
			v = strings.TrimSpace(v)
			switch k {
			case "Package":
				row.name = v
			case "Version":
				row.version = v
			case "Status":
				installed = strings.HasSuffix(v, " installed") || strings.HasSuffix(v, " config-files")
			}
		}
		if row.name != "" && row.version != "" && installed {
			l.rows = append(l.rows, row)
		}
	}
	sort.SliceStable(l.rows, func(i, j int) bool { return l.rows[i].name < l.rows[j].name })
	return l
}

// first returns the first package whose name contains s.
func (l dpkgList) first(s string) (dpkgRow, bool) {
	for _, r := range l.rows {
		if strings.Contains(r.name, s) {
			return r, true
		}
	}
	return dpkgRow{}, false
}

// standardLibDirs are searched after the directories ldconfig knows.
var standardLibDirs = []string{
	"usr/local/cuda/lib64", "usr/local/cuda/targets/x86_64-linux/lib", "usr/local/cuda/targets/sbsa-linux/lib",
	"usr/local/cuda/targets/aarch64-linux/lib", "usr/lib/x86_64-linux-gnu", "usr/lib/aarch64-linux-gnu",
	"usr/lib/aarch64-linux-gnu/nvidia", "usr/local/lib", "usr/lib64", "usr/lib",
}

// libraryDirs lists the directories of the libraries `ldconfig -p` knows,
// then the standard ones (relative to the FS root, deduplicated).
func (p *prober) libraryDirs(ctx context.Context) []string {
	if p.libDirs != nil {
		return p.libDirs
	}
	seen := map[string]bool{}
	var dirs []string
	add := func(d string) {
		d = strings.TrimPrefix(path.Clean("/"+d), "/")
		if !seen[d] {
			seen[d] = true
			dirs = append(dirs, d)
		}
	}
	if out, err := p.run(ctx, "ldconfig", "-p"); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			if _, target, ok := strings.Cut(line, "=> "); ok {
				add(path.Dir(strings.TrimSpace(target)))
			}
		}
	}
	for _, d := range standardLibDirs {
		add(d)
	}
	p.libDirs = dirs
	return dirs
}

// findVersionedLib finds <name>.so.<version> (at least major.minor) in the
// library directories: the highest version of the first directory holding one.
func (p *prober) findVersionedLib(ctx context.Context, name string) (version, dir string, ok bool) {
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(name) + `\.so\.(\d+\.\d+(?:\.\d+)*)$`)
	for _, d := range p.libraryDirs(ctx) {
		names, err := readDir(p.o.FS, d)
		if err != nil {
			continue
		}
		var best *pep440.Version
		bestStr := ""
		for _, n := range names {
			m := re.FindStringSubmatch(n)
			if m == nil {
				continue
			}
			v, err := pep440.Parse(m[1])
			if err != nil {
				continue
			}
			if best == nil || best.Less(v) {
				best, bestStr = &v, m[1]
			}
		}
		if best != nil {
			return bestStr, "/" + d, true
		}
	}
	return "", "", false
}

// majorMinorZero turns "12.6.77" into "12.6.0", the form
// cudaRuntimeGetVersion's integer takes in the reference.
func majorMinorZero(v string) (string, bool) {
	parts := strings.Split(v, ".")
	if len(parts) < 2 {
		return "", false
	}
	return normVersion(parts[0] + "." + parts[1] + ".0")
}

// cudaVersion: libcudart, then dpkg's cuda-cudart, capped by the driver's
// CUDA version (else the driver's, when only it is known).
func (p *prober) cudaVersion(ctx context.Context, dpkg dpkgList, driverCUDA string) *string {
	var runtimeV, src string
	if v, dir, ok := p.findVersionedLib(ctx, "libcudart"); ok {
		if n, ok := majorMinorZero(v); ok {
			runtimeV, src = n, fmt.Sprintf("libcudart.so.%s in %s", v, dir)
		}
	}
	if runtimeV == "" {
		if row, ok := dpkg.first("cuda-cudart"); ok {
			if n, ok := normVersion(row.version); ok {
				runtimeV, src = n, fmt.Sprintf("%s (%s %s)", dpkg.source, row.name, row.version)
			}
		}
	}
	driverV := ""
	if driverCUDA != "" {
		driverV, _ = normVersion(driverCUDA + ".0")
	}
	switch {
	case runtimeV != "" && driverV != "":
		rv, _ := pep440.Parse(runtimeV)
		dv, _ := pep440.Parse(driverV)
		if dv.MajorMinor().Less(rv.MajorMinor()) {
			p.warn("CUDA runtime %s is newer than the CUDA version %s the driver supports; reporting the driver's", runtimeV, driverV)
			p.source("cuda_version", "driver CUDA version (nvidia-smi), capping %s", src)
			return ptr(driverV)
		}
		p.source("cuda_version", "%s", src)
		return ptr(runtimeV)
	case runtimeV != "":
		p.source("cuda_version", "%s", src)
		return ptr(runtimeV)
	case driverV != "":
		p.source("cuda_version", "driver CUDA version (nvidia-smi); no CUDA runtime found")
		return ptr(driverV)
	}
	p.source("cuda_version", "not found: no libcudart, no cuda-cudart package (%s)", dpkg.source)
	return nil
}

// trtVersion: dpkg's libnvinfer-bin (cut at "+cuda"), then the tensorrt
// Python package, then the libnvinfer library file name.
func (p *prober) trtVersion(ctx context.Context, dpkg dpkgList, py pythonPackages) *string {
	if row, ok := dpkg.first("libnvinfer-bin"); ok {
		raw, _, _ := strings.Cut(row.version, "+cuda")
		if n, ok := normVersion(raw); ok {
			p.source("trt_version", "%s (%s %s)", dpkg.source, row.name, row.version)
			return ptr(n)
		}
	}
	if m, ok := py["tensorrt"]; ok && m.version != "" {
		if n, ok := normVersion(m.version); ok {
			p.source("trt_version", "Python package tensorrt (%s)", m.dir)
			return ptr(n)
		}
	}
	if v, dir, ok := p.findVersionedLib(ctx, "libnvinfer"); ok {
		if n, ok := normVersion(v); ok {
			p.source("trt_version", "libnvinfer.so.%s in %s", v, dir)
			return ptr(n)
		}
	}
	p.source("trt_version", "not found: no libnvinfer-bin package (%s), no tensorrt Python package, no libnvinfer", dpkg.source)
	return nil
}
