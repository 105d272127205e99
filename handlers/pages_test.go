package handlers_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/pixieauth/pixie/handlers"
	"github.com/pixieauth/pixie/provider"
	"github.com/pixieauth/pixie/store/memory"
)

// TestTemplateOverride: Config.Templates replaces the pages it has, by file
// name, and the others keep their defaults; a template that does not parse
// fails New, naming the file, instead of failing requests later.
func TestTemplateOverride(t *testing.T) {
	keys, err := testKeys()
	if err != nil {
		t.Fatal(err)
	}
	st := memory.New()
	for _, k := range keys {
		if err := st.AddKey(t.Context(), k.Clone()); err != nil {
			t.Fatal(err)
		}
	}
	p, err := provider.New(t.Context(), provider.Config{
		Issuer: "http://127.0.0.1:1", Clients: st, Users: st, Grants: st, Keys: st,
		Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	custom := fstest.MapFS{"login.html": {Data: []byte(
		`<!doctype html><html><head>{{template "head" .}}<title>ACME</title></head><body>` +
			`<h1>ACME sign-in</h1><form method="post" action="{{.Action}}">` +
			`<input type="hidden" name="csrf_token" value="{{.CSRFToken}}">` +
			`<input type="hidden" name="request" value="{{.Request}}"></form></body></html>`)}}
	srv, err := handlers.New(p, handlers.Config{Templates: custom})
	if err != nil {
		t.Fatalf("New with a login.html override: %v", err)
	}
	get := func(path string) (int, string, http.Header) {
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		body, _ := io.ReadAll(rec.Result().Body)
		return rec.Code, string(body), rec.Result().Header
	}
	code, body, h := get("/login")
	if code != http.StatusOK || !strings.Contains(body, "ACME sign-in") || !strings.Contains(body, `name="csrf_token" value="`) {
		t.Errorf("GET /login: got %d %q, want the custom page with its CSRF token", code, body)
	}
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("custom page: got CSP %q, want the same security headers as the default pages", csp)
	}
	// The pages it does not override keep their defaults.
	if code, body, _ := get("/authorize?client_id=nobody"); code != http.StatusBadRequest || !strings.Contains(body, "Something went wrong") {
		t.Errorf("error page: got %d %q, want the default error page", code, body)
	}

	_, err = handlers.New(p, handlers.Config{Templates: fstest.MapFS{"consent.html": {Data: []byte(`{{.Broken`)}}})
	if err == nil || !strings.Contains(err.Error(), "consent.html") {
		t.Errorf("New with a broken consent.html: got %v, want an error naming consent.html", err)
	}
}
