package xray

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// deviceGPU is a GPU as found by a probe, before CUDA ordering/visibility.
type deviceGPU struct {
	GPU
	bus  string // PCI bus id, "" when unknown
	uuid string // "GPU-…", "" when unknown
}

// ccTable gives the compute capability of GPUs by normalized-name prefix, for
// probes that cannot ask the device (old nvidia-smi, /proc, Jetson).
var ccTable = []struct{ prefix, cc string }{
	{"tesla-t4", "7.5"}, {"tesla-v100", "7.0"}, {"tesla-p100", "6.0"}, {"tesla-p40", "6.1"}, {"tesla-p4", "6.1"},
	{"tesla-k80", "3.7"}, {"nvidia-l40", "8.9"}, {"nvidia-l4", "8.9"}, {"nvidia-a100", "8.0"}, {"nvidia-a30", "8.0"},
	{"nvidia-a10", "8.6"}, {"nvidia-a40", "8.6"}, {"nvidia-a16", "8.6"}, {"nvidia-a2", "8.6"}, {"nvidia-h100", "9.0"},
	{"nvidia-h200", "9.0"}, {"nvidia-h20", "9.0"}, {"nvidia-gh200", "9.0"}, {"nvidia-b200", "10.0"},
	{"nvidia-geforce-rtx-40", "8.9"}, {"nvidia-geforce-rtx-30", "8.6"}, {"nvidia-geforce-rtx-20", "7.5"},
	{"nvidia-rtx-a6000", "8.6"}, {"nvidia-rtx-6000-ada", "8.9"}, {"orin", "8.7"}, {"xavier", "7.2"},
}

// tableCC returns the compute capability of a GPU name from ccTable
// (longest matching prefix).
func tableCC(name string) (string, bool) {
	n := NormalizeGPUName(name)
	best, cc := -1, ""
	for _, e := range ccTable {
		if strings.HasPrefix(n, e.prefix) && len(e.prefix) > best {
			best, cc = len(e.prefix), e.cc
		}
	}
	return cc, best >= 0
}

// gpus enumerates the CUDA devices and returns, when known, the CUDA version
// the driver supports ("12.4").
func (p *prober) gpus(ctx context.Context, jetson bool, jetsonType *string) ([]GPU, string) {
	if p.o.CUDA != nil {
		devs, err := p.o.CUDA.Devices(ctx)
		if err == nil {
			p.source("gpu_devices", "CUDA driver API")
			p.source("gpu_devices_cc", "CUDA driver API")
			driverCUDA := ""
			if v, err := p.o.CUDA.DriverVersion(ctx); err == nil && v > 0 {
				driverCUDA = fmt.Sprintf("%d.%d", v/1000, (v%1000)/10)
			}
			return devs, driverCUDA
		}
		p.log.DebugContext(ctx, "CUDA driver API unavailable", "error", err.Error())
	}
	found, src, ok := p.smiGPUs(ctx)
	tried := []string{src}
	if !ok {
		found, src, ok = p.procGPUs()
		tried = append(tried, src)
	}
	if !ok && jetson && jetsonType != nil {
		found, src, ok = jetsonGPU(*jetsonType)
		tried = append(tried, src)
	}
	if !ok {
		p.source("gpu_devices", "none found: %s", strings.Join(tried, "; "))
		p.source("gpu_devices_cc", "none found")
		return nil, ""
	}
	ordered, orderNote := p.cudaOrder(found)
	visible, visNote := p.cudaVisible(ordered)
	p.source("gpu_devices", "%s%s%s", src, orderNote, visNote)
	ccSrc := src
	for _, g := range found {
		if g.CC == "" {
			ccSrc = src + " (compute capability from the built-in GPU table where the tool gave none)"
		}
	}
	out := make([]GPU, 0, len(visible))
	for _, g := range visible {
		if g.CC == "" {
			cc, known := tableCC(g.Name)
			if !known {
				cc = "0.0"
				p.warn("compute capability of GPU %q is unknown; reporting 0.0 (same-CC TensorRT packages will not match)", g.Name)
			}
			g.CC = cc
		}
		out = append(out, g.GPU)
	}
	p.source("gpu_devices_cc", "%s", ccSrc)
	driverCUDA := ""
	if strings.HasPrefix(src, "nvidia-smi") {
		driverCUDA = p.smiDriverCUDA(ctx)
	}
	return out, driverCUDA
}

// smiGPUs asks nvidia-smi (PCI order).
func (p *prober) smiGPUs(ctx context.Context) ([]deviceGPU, string, bool) {
	const withCC = "index,pci.bus_id,uuid,name,compute_cap"
	out, err := p.run(ctx, "nvidia-smi", "--query-gpu="+withCC, "--format=csv,noheader")
	fields := 5
	if err != nil {
		// Drivers older than 510 do not know compute_cap.
		out, err = p.run(ctx, "nvidia-smi", "--query-gpu=index,pci.bus_id,uuid,name", "--format=csv,noheader")
		fields = 4
	}
	if err != nil {
		return nil, toolErr("nvidia-smi", err), false
	}
	var gpus []deviceGPU
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		parts := strings.Split(line, ",")
		if len(parts) < fields {
			continue
		}
		for i := range parts {
			parts[i] = strings.TrimSpace(parts[i])
		}
		// A name holding commas: everything between uuid and the CC column.
		nameEnd := len(parts)
		if fields == 5 {
			nameEnd--
		}
		g := deviceGPU{bus: na(parts[1]), uuid: na(parts[2])}
		g.Name = strings.Join(parts[3:nameEnd], ",")
		if fields == 5 {
			g.CC = na(parts[nameEnd])
		}
		if g.Name == "" {
			continue
		}
		gpus = append(gpus, g)
	}
	if len(gpus) == 0 {
		return nil, "nvidia-smi listed no GPU", false
	}
	return gpus, "nvidia-smi --query-gpu", true
}

// na maps nvidia-smi's "[N/A]" / "[Not Supported]" to "".
func na(s string) string {
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		return ""
	}
	return s
}

var smiCUDARe = regexp.MustCompile(`CUDA Version:\s*(\d+)\.(\d+)`)

// smiDriverCUDA reads the CUDA version the driver supports from nvidia-smi's
// banner (what cuDriverGetVersion returns).
func (p *prober) smiDriverCUDA(ctx context.Context) string {
	out, err := p.run(ctx, "nvidia-smi")
	if err != nil {
		return ""
	}
	m := smiCUDARe.FindStringSubmatch(string(out))
	if m == nil {
		return ""
	}
	return m[1] + "." + m[2]
}

// procGPUs reads /proc/driver/nvidia/gpus/<bus>/information (PCI order).
func (p *prober) procGPUs() ([]deviceGPU, string, bool) {
	const dir = "proc/driver/nvidia/gpus"
	entries, err := readDir(p.o.FS, dir)
	if err != nil {
		return nil, "no /proc/driver/nvidia/gpus", false
	}
	var gpus []deviceGPU
	for _, e := range entries {
		b, err := p.readFile(path.Join(dir, e, "information"))
		if err != nil {
			continue
		}
		g := deviceGPU{bus: e}
		for _, line := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			v = strings.TrimSpace(v)
			switch strings.TrimSpace(k) {
			case "Model":
				g.Name = v
			case "GPU UUID":
				g.uuid = v
			case "Bus Location":
				g.bus = v
			}
		}
		if g.Name != "" {
			gpus = append(gpus, g)
		}
	}
	if len(gpus) == 0 {
		return nil, "no GPU in /proc/driver/nvidia/gpus", false
	}
	return gpus, "/proc/driver/nvidia/gpus/*/information", true
}

// jetsonGPU is the integrated GPU of a Jetson module, as CUDA names it.
func jetsonGPU(jetsonType string) ([]deviceGPU, string, bool) {
	switch {
	case strings.Contains(jetsonType, "orin"):
		return []deviceGPU{{GPU: GPU{Name: "Orin", CC: "8.7"}}}, "Jetson module table (" + jetsonType + ")", true
	case strings.Contains(jetsonType, "xavier"):
		return []deviceGPU{{GPU: GPU{Name: "Xavier", CC: "7.2"}}}, "Jetson module table (" + jetsonType + ")", true
	}
	return nil, "Jetson module " + jetsonType + " has no known CUDA device name", false
}

// cudaOrder applies CUDA_DEVICE_ORDER: PCI_BUS_ID keeps the PCI order; the
// default FASTEST_FIRST is approximated by compute capability, descending
// (CUDA's own heuristic is not public; identical GPUs stay in PCI order).
func (p *prober) cudaOrder(gpus []deviceGPU) ([]deviceGPU, string) {
	out := append([]deviceGPU(nil), gpus...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].bus < out[j].bus })
	if v, _ := p.getenv("CUDA_DEVICE_ORDER"); v == "PCI_BUS_ID" {
		return out, ", CUDA_DEVICE_ORDER=PCI_BUS_ID"
	}
	cc := func(g deviceGPU) float64 {
		c := g.CC
		if c == "" {
			c, _ = tableCC(g.Name)
		}
		f, _ := strconv.ParseFloat(c, 64)
		return f
	}
	mixed := false
	for _, g := range out {
		if cc(g) != cc(out[0]) {
			mixed = true
		}
	}
	if !mixed {
		return out, ""
	}
	sort.SliceStable(out, func(i, j int) bool { return cc(out[i]) > cc(out[j]) })
	return out, ", FASTEST_FIRST order approximated by compute capability"
}

// cudaVisible applies CUDA_VISIBLE_DEVICES: indices into the CUDA order or
// GPU UUID prefixes, comma-separated; parsing stops at the first invalid or
// repeated entry, as in CUDA. Set but empty hides every GPU.
func (p *prober) cudaVisible(gpus []deviceGPU) ([]deviceGPU, string) {
	v, set := p.getenv("CUDA_VISIBLE_DEVICES")
	if !set {
		return gpus, ""
	}
	var out []deviceGPU
	used := map[int]bool{}
	for _, tok := range strings.Split(v, ",") {
		tok = strings.TrimSpace(tok)
		idx := -1
		if n, err := strconv.Atoi(tok); err == nil {
			if n >= 0 && n < len(gpus) {
				idx = n
			}
		} else if strings.HasPrefix(tok, "GPU-") {
			for i, g := range gpus {
				if g.uuid != "" && strings.HasPrefix(g.uuid, tok) {
					if idx >= 0 { // ambiguous prefix
						idx = -1
						break
					}
					idx = i
				}
			}
		}
		if idx < 0 || used[idx] {
			break
		}
		used[idx] = true
		out = append(out, gpus[idx])
	}
	return out, fmt.Sprintf(", CUDA_VISIBLE_DEVICES=%q", v)
}

// toolErr describes a failed tool run in a source text.
func toolErr(name string, err error) string {
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
		return name + " not installed"
	}
	return name + " failed: " + shortErr(err)
}

func shortErr(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}
