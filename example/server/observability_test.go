package main

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

// TestMetrics: with -metrics-addr, after one flow the metrics address
// serves, over real HTTP, the Prometheus text format with pixie's metrics;
// the audit events go to the log; -trace stdout prints pixie's spans.
func TestMetrics(t *testing.T) {
	t.Parallel()
	const password = "metrics test password"
	metrics := "127.0.0.1:" + freePort(t)
	s := start(t, nil, "-metrics-addr", metrics, "-trace", "stdout", "-demo-password", password)
	code, verifier, err := s.login(t, password)
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	tok, err := s.app().Exchange(t.Context(), code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}

	resp, err := http.Get("http://" + metrics + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		t.Fatalf("GET /metrics: got %d %s, want 200 with the text format", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	text := string(body)
	for _, want := range []string{
		"# TYPE pixie_tokens_issued_total counter",
		`pixie_tokens_issued_total{otel_scope_name="github.com/pixieauth/pixie"`,
		`pixie_grant_type="authorization_code",pixie_token_kind="id_token"} 1`,
		`pixie_login_attempts_total{`,
		`pixie_result="success"} 1`,
		`pixie_authorize_outcomes_total{`,
		`pixie_outcome="code_issued"} 1`,
		"# TYPE pixie_store_duration_seconds histogram",
		`pixie_store_operation="Users.Authenticate",pixie_store_outcome="ok"`,
		"# TYPE pixie_keys_age_seconds gauge",
		`pixie_key_alg="ES256"`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", text)
	}
	for _, secret := range []string{tok.AccessToken, code, verifier, password} {
		if strings.Contains(text, secret) {
			t.Errorf("/metrics holds a credential")
		}
	}
	if out := s.out.String(); !strings.Contains(out, "msg=audit event=login_succeeded") || !strings.Contains(out, "msg=audit event=tokens_issued") {
		t.Errorf("the audit events are not in the log:\n%s", out)
	}
	s.stop()
	if err := s.wait(); err != nil {
		t.Fatalf("run: %v", err)
	}
	if out := s.out.String(); !strings.Contains(out, `"Name":"pixie.token"`) {
		t.Errorf("-trace stdout printed no pixie.token span:\n%.2000s", out)
	}
}
