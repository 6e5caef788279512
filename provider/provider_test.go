package provider

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/modelcache/modelcache/errdefs"
	"github.com/modelcache/modelcache/metadata"
)

func echo(id string) Provider {
	return Func(func(ctx context.Context, req Request) (*metadata.ModelMetadata, error) {
		return &metadata.ModelMetadata{ModelID: id + ":" + req.ModelID + ":" + req.APIKey}, nil
	})
}

func TestRegistryBuiltinsReservedAndCustom(t *testing.T) {
	r, err := NewRegistry(map[string]Provider{Roboflow: echo("rf")})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"", "  ", "roboflow", "ROBOFLOW", "Roboflow-Offline-Weights"} {
		if err := r.Register(name, echo("x")); !errors.Is(err, errdefs.ErrInvalidParameter) {
			t.Errorf("Register(%q) = %v, want refusal", name, err)
		}
	}
	if err := r.Register("mine", nil); err == nil {
		t.Error("nil provider accepted")
	}
	if err := r.Register("mine", echo("mine")); err != nil {
		t.Fatal(err)
	}
	// Custom providers get the key unchanged ("local" included).
	md, err := r.ModelMetadata(context.Background(), "mine", Request{ModelID: "a/1", APIKey: "local"})
	if err != nil || md.ModelID != "mine:a/1:local" {
		t.Fatalf("custom provider: %v %v", md, err)
	}
	md, err = r.ModelMetadata(context.Background(), Roboflow, Request{ModelID: "a/1"})
	if err != nil || md.ModelID != "rf:a/1:" {
		t.Fatalf("builtin: %v %v", md, err)
	}
	// The offline built-in is reserved but unresolvable until installed.
	_, err = r.Get(RoboflowOfflineWeights)
	var re *RetrievalError
	if !errors.As(err, &re) || !strings.HasPrefix(err.Error(), "Requested model to be retrieved using 'roboflow-offline-weights' provider which is not implemented.") {
		t.Fatalf("unset builtin: %v", err)
	}
	if err := r.SetBuiltin(RoboflowOfflineWeights, echo("off")); err != nil {
		t.Fatal(err)
	}
	if err := r.SetBuiltin("mine2", echo("x")); err == nil {
		t.Fatal("SetBuiltin accepted a non-builtin name")
	}
	if got := strings.Join(r.Names(), ","); got != "mine,roboflow,roboflow-offline-weights" {
		t.Fatalf("names %s", got)
	}
	if _, err := r.Get("nope"); !errors.Is(err, ErrModelRetrieval) {
		t.Fatalf("unknown provider: %v", err)
	}
	if _, err := r.ModelMetadata(context.Background(), "mine", Request{ModelID: " "}); !errors.Is(err, errdefs.ErrInvalidParameter) {
		t.Fatalf("blank id: %v", err)
	}
	if _, err := NewRegistry(map[string]Provider{"custom": echo("x")}); err == nil {
		t.Fatal("NewRegistry accepted a non-builtin name")
	}
	// Registries are independent values.
	r2, _ := NewRegistry(nil)
	if _, err := r2.Get("mine"); err == nil {
		t.Fatal("registries share state")
	}
}

func TestErrorKindsAndSentinels(t *testing.T) {
	e := &RetrievalError{Kind: KindForbidden, StatusCode: 403, Message: "Access forbidden."}
	if !errors.Is(e, ErrForbidden) || !errors.Is(e, ErrModelRetrieval) || errors.Is(e, ErrUnauthorized) {
		t.Fatal("sentinel matching")
	}
	if e.Error() != "Access forbidden. - VISIT https://inference-models.roboflow.com/errors/model-retrieval/#forbiddenmodelaccesserror FOR FURTHER SUPPORT" {
		t.Fatalf("message %q", e.Error())
	}
	r := &RetryError{Message: "x"}
	if !errors.Is(r, ErrRetry) || errors.Is(r, ErrModelRetrieval) {
		t.Fatal("RetryError matching")
	}
}
