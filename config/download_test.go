package config

import (
	"errors"
	"math"
	"reflect"
	"testing"
	"time"
)

func TestDownloadLimitsFromEnv(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		want        func(*DownloadLimits)
	}{
		{EnvDownloadRetryDeadline, "90", func(l *DownloadLimits) { l.RetryDeadline = 90 * time.Second }},
		{EnvDownloadRetryDeadline, "0", func(l *DownloadLimits) { l.RetryDeadline = 0 }},
		{EnvDownloadRetryDeadline, "inf", func(l *DownloadLimits) { l.RetryDeadline = math.MaxInt64 }},
		{EnvDownloadMaxUnknownSize, "500 MB", func(l *DownloadLimits) { l.MaxUnknownSize = 500_000_000 }},
		{EnvDownloadMaxUnknownSize, "1GiB", func(l *DownloadLimits) { l.MaxUnknownSize = 1 << 30 }},
		{EnvDownloadMaxUnknownSize, "4096", func(l *DownloadLimits) { l.MaxUnknownSize = 4096 }},
		{EnvDiskReservePercent, "0", func(l *DownloadLimits) { l.DiskReservePercent = 0 }},
		{EnvDiskReservePercent, "12.5", func(l *DownloadLimits) { l.DiskReservePercent = 12.5 }},
	} {
		want := Default()
		tc.want(&want.DownloadLimits)
		got := mustFromEnv(t, map[string]string{tc.name: tc.value})
		if !reflect.DeepEqual(got.DownloadLimits, want.DownloadLimits) {
			t.Errorf("%s=%q: got %+v, want %+v", tc.name, tc.value, got.DownloadLimits, want.DownloadLimits)
		}
	}
}

func TestDownloadLimitsRejects(t *testing.T) {
	for name, values := range map[string][]string{
		EnvDownloadRetryDeadline:  {"", "soon", "nan"},
		EnvDownloadMaxUnknownSize: {"", "0", "-1", "lots", "1 XB", "99999999999 EiB"},
		EnvDiskReservePercent:     {"", "-1", "101", "nan", "5%"},
	} {
		for _, v := range values {
			_, err := FromEnv(envOf(map[string]string{name: v}))
			var ie *InvalidEnvError
			if !errors.As(err, &ie) || ie.Name != name || ie.Value != v || ie.Accepted == "" {
				t.Errorf("%s=%q: want an InvalidEnvError naming it, got %v", name, v, err)
			}
		}
	}
}
