package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/modelcache/modelcache/config"
	"github.com/modelcache/modelcache/internal/maintain/maintaintest"
	"github.com/modelcache/modelcache/internal/testsvc"
)

// tierCLIConfig is the cache's configuration with the tier pointed at srv
// through the environment a fleet would set.
func tierCLIConfig(t *testing.T, c *cliCache, srv *testsvc.S3Server, extra ...string) config.Config {
	t.Helper()
	env := srv.Env("model-blobs")
	for i := 0; i+1 < len(extra); i += 2 {
		env[extra[i]] = extra[i+1]
	}
	cfg, err := config.FromEnv(func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	cfg.Home = c.Config.Home
	return cfg
}

func TestCLITierStatusAndPush(t *testing.T) {
	c := newCLICache(t)
	srv := testsvc.StartS3(t)
	cfg := tierCLIConfig(t, c, srv)
	weights, own := maintaintest.MD5(c.weights), maintaintest.MD5(c.own)

	var st tierStatusOut
	out, code, err := runMaintCmd(t, newTierCmd, cfg, "status", "--json")
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("status: exit %d %v\n%s", code, err, out)
	}
	if !st.Enabled || !st.Reachable || st.Models != 2 || st.Local.Count != 2 || st.Missing.Count != 2 || st.InTier.Count != 0 {
		t.Fatalf("status before push: %s", out)
	}

	var pr tierPushOut
	out, code, err = runMaintCmd(t, newTierCmd, cfg, "push", "ws/det/3", "--json")
	if code != 0 || json.Unmarshal([]byte(out), &pr) != nil {
		t.Fatalf("push: exit %d %v\n%s", code, err, out)
	}
	if pr.Uploaded.Count != 2 || pr.Uploaded.Bytes != int64(len(c.weights)+len(c.own)) || pr.Existed.Count != 0 {
		t.Fatalf("push report: %s", out)
	}
	for sum, b := range map[string][]byte{weights: c.weights, own: c.own} {
		if got, err := os.ReadFile(srv.ObjectPath("model-blobs/" + sum)); err != nil || !bytes.Equal(got, b) {
			t.Fatalf("object model-blobs/%s: %v", sum, err)
		}
	}
	out, code, _ = runMaintCmd(t, newTierCmd, cfg, "push", "ws/seg/1")
	if code != 0 || !strings.Contains(out, "already there  1 (") {
		t.Fatalf("second push: exit %d\n%s", code, out)
	}
	out, code, _ = runMaintCmd(t, newTierCmd, cfg, "status")
	if code != 0 || !strings.Contains(out, "in the tier  2 (") || !strings.Contains(out, "reachable    yes") {
		t.Fatalf("status text: exit %d\n%s", code, out)
	}
	if strings.Contains(out, srv.SecretKey) {
		t.Fatal("status prints the secret")
	}
	if _, code, err := runMaintCmd(t, newTierCmd, cfg, "push", "nobody/1"); code != 1 || !strings.Contains(err.Error(), "nobody/1") {
		t.Fatalf("push of an unknown model: exit %d %v", code, err)
	}
	if _, code, _ := runMaintCmd(t, newTierCmd, cfg, "push", "--jobs", "x"); code != 2 {
		t.Fatalf("push --jobs x: exit %d", code)
	}

	// A local blob that no longer matches its name is not pushed: exit 1.
	if err := srv.Client(t).RemoveObject(context.Background(), srv.Bucket, "model-blobs/"+own, minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	p := c.BlobPath(c.own)
	bad := append([]byte{}, c.own...)
	bad[0] ^= 1
	os.Chmod(p, 0o644)
	if err := os.WriteFile(p, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	out, code, _ = runMaintCmd(t, newTierCmd, cfg, "push", "--json")
	if code != 1 || json.Unmarshal([]byte(out), &pr) != nil || pr.LocalMismatch.Count != 1 || len(pr.Errors) != 1 || pr.Errors[0].MD5 != own {
		t.Fatalf("push of a corrupt local blob: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(srv.ObjectPath("model-blobs/" + own)); err == nil {
		t.Fatal("the corrupt local blob reached the bucket")
	}

	// Unreachable: exit 1, and the report says why.
	srv.Stop()
	out, code, _ = runMaintCmd(t, newTierCmd, cfg, "status", "--json")
	if code != 1 || json.Unmarshal([]byte(out), &st) != nil || st.Reachable || st.Error == "" {
		t.Fatalf("status of a stopped server: exit %d\n%s", code, out)
	}
}

func TestCLITierDisabled(t *testing.T) {
	c := newCLICache(t)
	srv := testsvc.StartS3(t)
	for name, cfg := range map[string]config.Config{
		"not enabled":   tierCLIConfig(t, c, srv, config.EnvBlobCacheEnabled, "false"),
		"offline":       tierCLIConfig(t, c, srv, config.EnvOffline, "true"),
		"misconfigured": tierCLIConfig(t, c, srv, config.EnvBlobCacheAddressingStyle, "dns"),
	} {
		out, code, _ := runMaintCmd(t, newTierCmd, cfg, "status")
		if code != 2 || !strings.Contains(out, "disabled") {
			t.Errorf("%s: status exit %d\n%s", name, code, out)
		}
		if _, code, _ := runMaintCmd(t, newTierCmd, cfg, "push"); code != 2 {
			t.Errorf("%s: push exit %d", name, code)
		}
	}
}
