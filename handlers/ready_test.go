package handlers_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pixieauth/pixie/handlers"
	"github.com/pixieauth/pixie/provider"
)

// TestReadyDatabaseDown: Server.Ready answers 200 while PostgreSQL answers,
// 503 while it is away (the proxy in front of it stopped, as in
// TestDatabaseDown), and 200 again once it is back.
func TestReadyDatabaseDown(t *testing.T) {
	st, proxy := proxiedPostgres(t)
	logger, logs := testLogger(t, "server")
	p, err := provider.New(t.Context(), provider.Config{
		Issuer:  "http://127.0.0.1:9",
		Clients: st, Users: st, Grants: st, Keys: st,
		CleanupInterval: -1,
		StoreTimeout:    2 * time.Second,
		Logger:          logger,
	})
	if err != nil {
		t.Fatalf("provider.New: %v", err)
	}
	h, err := handlers.New(p, handlers.Config{Sessions: st, Consents: st, Throttle: st})
	if err != nil {
		t.Fatalf("handlers.New: %v", err)
	}
	srv := httptest.NewServer(h.Ready())
	t.Cleanup(srv.Close)
	ready := func() (int, string) {
		t.Helper()
		resp, err := srv.Client().Get(srv.URL + "/readyz")
		if err != nil {
			t.Fatalf("GET /readyz: %v", err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	// eventually polls the check, as a probe does, until it answers want.
	eventually := func(what string, want int) {
		t.Helper()
		var status int
		var body string
		for range 20 {
			if status, body = ready(); status == want {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("%s: got %d %q, want %d", what, status, body, want)
	}

	if status, body := ready(); status != http.StatusOK || body != "ok\n" {
		t.Fatalf("with the database up: got %d %q, want 200 ok", status, body)
	}
	proxy.stop()
	status, body := ready()
	if status != http.StatusServiceUnavailable || body != "not ready\n" {
		t.Errorf("with the database away: got %d %q, want 503 not ready", status, body)
	}
	if !strings.Contains(logs.String(), "not ready") {
		t.Error("the failure is not logged")
	}
	proxy.restore(t)
	eventually("after the database came back", http.StatusOK)
}
