package xray

import (
	"bufio"
	"bytes"
	"regexp"
	"strings"
)

// jetsonModules is the reference's ordered prefix table of Jetson modules.
var jetsonModules = []string{
	"NVIDIA Jetson Orin Nano",
	"NVIDIA Jetson Orin NX",
	"NVIDIA Jetson AGX Orin",
	"NVIDIA Jetson IGX Orin",
	"NVIDIA Jetson Xavier NX",
	"NVIDIA Jetson AGX Xavier Industrial",
	"NVIDIA Jetson AGX Xavier",
	"NVIDIA Jetson Nano",
	"NVIDIA Jetson TX2",
}

// ResolveJetsonType maps a module name ("NVIDIA Jetson Orin NX Engineering
// Reference Developer Kit") to the x-ray's jetson_type
// ("nvidia-jetson-orin-nx") by ordered prefix match.
func ResolveJetsonType(module string) (string, bool) {
	for _, m := range jetsonModules {
		if strings.HasPrefix(module, m) {
			return strings.ToLower(strings.ReplaceAll(m, " ", "-")), true
		}
	}
	return "", false
}

// parseStrictBool is the reference's str2bool: true/false in any case.
func parseStrictBool(s string) (bool, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	return false, false
}

func (p *prober) isJetson() (bool, error) {
	if p.jtDone {
		return p.jetsonFlag, p.jtErr
	}
	p.jetsonFlag, p.jtErr = p.decideJetson()
	return p.jetsonFlag, p.jtErr
}

func (p *prober) decideJetson() (bool, error) {
	if v := p.o.RunningOnJetson; v != "" {
		b, ok := parseStrictBool(v)
		if !ok {
			return false, &InvalidEnvError{Variable: "RUNNING_ON_JETSON", Value: v, Want: "true or false"}
		}
		if !b {
			p.source("jetson_type", "RUNNING_ON_JETSON=%s", v)
		}
		return b, nil
	}
	jt, err := p.jetsonType()
	if err != nil {
		return false, err
	}
	return jt != nil, nil
}

// jetsonType: JETSON_MODULE, else /proc/device-tree/model (lshw is skipped:
// it needs root and is slow).
func (p *prober) jetsonType() (*string, error) {
	if !p.typeDone {
		p.jt, p.typeErr = p.resolveJetsonType()
		p.typeDone = true
	}
	return p.jt, p.typeErr
}

func (p *prober) resolveJetsonType() (*string, error) {
	if m := p.o.JetsonModule; m != "" {
		t, ok := ResolveJetsonType(m)
		if !ok {
			return nil, &JetsonTypeResolutionError{Value: m}
		}
		p.source("jetson_type", "env JETSON_MODULE=%q", m)
		return &t, nil
	}
	b, err := p.readFile("/proc/device-tree/model")
	if err != nil {
		p.source("jetson_type", "not found: /proc/device-tree/model unreadable")
		return nil, nil
	}
	line := strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", ""))
	line, _, _ = strings.Cut(line, "\n")
	t, ok := ResolveJetsonType(line)
	if !ok {
		p.source("jetson_type", "not found: /proc/device-tree/model is %q, not a Jetson module", line)
		return nil, nil
	}
	p.source("jetson_type", "/proc/device-tree/model (%q)", line)
	return &t, nil
}

var tegraRelease = regexp.MustCompile(`R(\d+).*REVISION:\s*([\d.]+)`)

func (p *prober) l4tVersion() (*string, error) {
	if v := p.o.L4TVersion; v != "" {
		n, ok := normVersion(v)
		if !ok {
			return nil, &InvalidEnvError{Variable: "L4T_VERSION", Value: v, Want: "a version such as 36.4.3"}
		}
		p.source("l4t_version", "env L4T_VERSION")
		return &n, nil
	}
	b, err := p.readFile("/etc/nv_tegra_release")
	if err != nil {
		p.source("l4t_version", "not found: /etc/nv_tegra_release unreadable and L4T_VERSION unset")
		return nil, nil
	}
	first, _, _ := strings.Cut(string(b), "\n")
	m := tegraRelease.FindStringSubmatch(first)
	if m == nil {
		p.source("l4t_version", "not found: /etc/nv_tegra_release has no release line")
		return nil, nil
	}
	n, ok := normVersion(m[1] + "." + m[2])
	if !ok {
		p.source("l4t_version", "not found: /etc/nv_tegra_release version %q invalid", m[1]+"."+m[2])
		return nil, nil
	}
	p.source("l4t_version", "/etc/nv_tegra_release")
	return &n, nil
}

// osVersion: <NAME>-<VERSION_ID> of /etc/os-release, lower-cased; else
// linux-<kernel release>-<machine>.
func (p *prober) osVersion() *string {
	if b, err := p.readFile("/etc/os-release"); err == nil {
		data := map[string]string{}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
			if ok {
				data[k] = v
			}
		}
		name, ok1 := data["NAME"]
		id, ok2 := data["VERSION_ID"]
		if ok1 && ok2 {
			p.source("os_version", "/etc/os-release NAME and VERSION_ID")
			return ptr(strings.ToLower(strings.Trim(name, `"`) + "-" + strings.Trim(id, `"`)))
		}
	}
	release := "unknown"
	if b, err := p.readFile("/proc/sys/kernel/osrelease"); err == nil {
		release = strings.TrimSpace(string(b))
	}
	p.source("os_version", "uname fallback (no NAME/VERSION_ID in /etc/os-release; differs from the reference's platform string)")
	return ptr(strings.ToLower("linux-" + release + "-" + p.o.Machine))
}

var driverRe = regexp.MustCompile(`\b(\d+(\.\d+){1,2})\b`)

func (p *prober) driverVersion(jetson bool, l4t *string) *string {
	if b, err := p.readFile("/proc/driver/nvidia/version"); err == nil {
		first, _, _ := strings.Cut(string(b), "\n")
		if m := driverRe.FindStringSubmatch(first); m != nil {
			if n, ok := normVersion(m[1]); ok {
				p.source("driver_version", "/proc/driver/nvidia/version")
				return &n
			}
		}
	}
	if jetson && l4t != nil {
		p.source("driver_version", "L4T version (Jetson)")
		v := *l4t
		return &v
	}
	p.source("driver_version", "not found: /proc/driver/nvidia/version unreadable")
	return nil
}
