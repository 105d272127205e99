package handlers

import (
	"testing"

	"github.com/pixieauth/pixie/provider"
	"github.com/pixieauth/pixie/store/memory"
)

// TestProviderOps: the provider's handler view has every method the Server
// calls, so New can never fail on it. The external tests all go through
// New too; this one names the failure.
func TestProviderOps(t *testing.T) {
	st := memory.New()
	p, err := provider.New(t.Context(), provider.Config{
		Issuer:  "https://login.example.com",
		Clients: st, Users: st, Grants: st, Keys: st,
	})
	if err != nil {
		t.Fatal(err)
	}
	ops, err := providerOps(p)
	if err != nil {
		t.Fatalf("providerOps: %v", err)
	}
	if got := ops.Issuer(); got != "https://login.example.com" {
		t.Errorf("Issuer through the view: got %q, want the configured issuer", got)
	}
}
