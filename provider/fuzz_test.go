package provider

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode"

	"github.com/pixieauth/pixie/internal/engine"
	"github.com/pixieauth/pixie/store"
)

// FuzzValidateRedirectURI checks the registration rules on arbitrary URIs:
// it must never panic, and whatever it accepts keeps the rules: https with a
// host for every client; http only for a native client on a loopback IP;
// other schemes only for native clients, in reverse-domain form; never a
// fragment. Native clients may register anything a web client may.
func FuzzValidateRedirectURI(f *testing.F) {
	for _, seed := range []string{
		"https://app.example.com/cb",
		"https://app.example.com:8443/cb?x=1",
		"https:///cb",
		"https://:8443/cb",
		"https://[::1]/cb",
		"http://127.0.0.1/cb",
		"http://127.0.0.1:51004/cb",
		"http://[::1]:8080/cb",
		"http://localhost/cb",
		"http://127.0.0.1@evil.example/cb",
		"http://[::ffff:127.0.0.1]/cb",
		"http://0x7f.1/cb",
		"com.example.app:/cb",
		"com.example.app://cb",
		"myapp:/cb",
		"javascript:alert(1)//",
		"data:text/html,hi",
		"https://app.example.com/cb#frag",
		"https://app.example.com/cb#",
		"/cb",
		"//app.example.com/cb",
		"HTTPS://APP.EXAMPLE.COM/cb",
		"https://app.example.com%2F@evil.example/",
		"",
	} {
		f.Add(seed, false)
		f.Add(seed, true)
	}
	f.Fuzz(func(t *testing.T, raw string, native bool) {
		err := ValidateClient(&store.Client{ID: "app", Native: native, RedirectURIs: []string{raw}})
		if err != nil {
			return
		}
		u, perr := url.Parse(raw)
		if perr != nil {
			t.Fatalf("accepted %q (native %v), which does not parse: %v", raw, native, perr)
		}
		if u.Scheme == "" || strings.Contains(raw, "#") {
			t.Fatalf("accepted %q (native %v): want absolute without fragment", raw, native)
		}
		switch u.Scheme {
		case "https":
			if u.Hostname() == "" {
				t.Fatalf("accepted %q (native %v): https without a host", raw, native)
			}
		case "http":
			ip := net.ParseIP(u.Hostname())
			if !native || ip == nil || !ip.IsLoopback() {
				t.Fatalf("accepted %q (native %v): http other than a native client's loopback IP", raw, native)
			}
		default:
			if !native || !strings.Contains(u.Scheme, ".") {
				t.Fatalf("accepted %q (native %v): custom scheme %q", raw, native, u.Scheme)
			}
		}
		if !native {
			if u.Scheme != "https" || u.Hostname() == "" {
				t.Fatalf("accepted %q for a web client: want https with a host", raw)
			}
			if err := ValidateClient(&store.Client{ID: "app", Native: true, RedirectURIs: []string{raw}}); err != nil {
				t.Fatalf("%q accepted for a web client but refused for a native one: %v", raw, err)
			}
		}
	})
}

// isRFC6750Token reports whether s is an RFC 6750 §2.1 b64token:
// 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=".
func isRFC6750Token(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	for _, c := range []byte(body) {
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte("-._~+/", c) >= 0) {
			return false
		}
	}
	return true
}

func bearerRequest(header string) *http.Request {
	return &http.Request{Header: http.Header{"Authorization": {header}}}
}

// FuzzAuthorizationToken checks authorizationToken on arbitrary
// Authorization headers: it never panics; a token it returns is part of the
// header, came with the scheme it names (Bearer or DPoP), and has no
// whitespace in it; and any b64token comes back unchanged from "Bearer
// <token>" and "DPoP <token>", whatever the case of the scheme.
func FuzzAuthorizationToken(f *testing.F) {
	for _, seed := range []string{
		"Bearer mF_9.B5f-4.1JqM",
		"bearer mF_9.B5f-4.1JqM",
		"BEARER abc",
		"Bearer ory_at_abc.def",
		"Bearer abc==",
		"Bearer",
		"Bearer ",
		"Bearer  abc",
		"Bearer abc ",
		"Bearer abc\t",
		"Bearer a b",
		"Bearer a\tb",
		"Bearer\tabc",
		"Basic dXNlcjpwYXNz",
		"Bearerabc",
		"mF_9.B5f-4.1JqM",
		"",
		// U+00A0 arrives over HTTP as obs-text; it is whitespace, and not
		// in the b64token alphabet.
		"Bearer abc\u00a0def",
		"DPoP mF_9.B5f-4.1JqM",
		"dpop abc",
		"DPoPabc",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		named, tok := authorizationToken(bearerRequest(s))
		if (named == "") != (tok == "") || (named != "" && named != "Bearer" && named != "DPoP") {
			t.Errorf("header %q: got scheme %q and token %q", s, named, tok)
		}
		if tok != "" {
			scheme, _, ok := strings.Cut(s, " ")
			if !ok || !strings.EqualFold(scheme, named) {
				t.Errorf("header %q: got token %q without the %s scheme", s, tok, named)
			}
			if !strings.Contains(s, tok) {
				t.Errorf("header %q: got token %q, which is not in it", s, tok)
			}
			if strings.ContainsFunc(tok, unicode.IsSpace) {
				t.Errorf("header %q: got token %q, which contains whitespace", s, tok)
			}
		}
		if isRFC6750Token(s) {
			for _, scheme := range []string{"Bearer ", "bearer ", "BEARER ", "DPoP ", "dpop "} {
				if _, got := authorizationToken(bearerRequest(scheme + s)); got != s {
					t.Errorf("header %q: got token %q, want %q", scheme+s, got, s)
				}
			}
		}
	})
}

// validPKCEChallenge reports whether challenge has the form of RFC 7636
// §4.2: 43 to 128 unreserved characters, [A-Za-z0-9-._~].
func validPKCEChallenge(challenge string) bool {
	if len(challenge) < 43 || len(challenge) > 128 {
		return false
	}
	for _, c := range []byte(challenge) {
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || strings.IndexByte("-._~", c) >= 0) {
			return false
		}
	}
	return true
}

// pkceCheck is the outcome of an authorization request with the given PKCE
// parameters: whether ParseAuthorizeRequest accepted it, and if so whether
// IssueCode (the step after the user has logged in) did too.
type pkceCheck struct {
	parseErr, issueErr error
}

func checkPKCE(t *testing.T, e *testEnv, challenge, method string) pkceCheck {
	t.Helper()
	areq, err := e.p.parseAuthorizeRequest(t.Context(), authorizeRequest(authorizeQuery(challenge, method)))
	if err != nil {
		return pkceCheck{parseErr: err}
	}
	_, err = e.p.issueCode(t.Context(), areq, Login{Subject: testSubject})
	return pkceCheck{issueErr: err}
}

// assertPKCERefusal checks that a refused request is invalid_request sent
// back to the client (whose redirect URI is valid) with its state.
func assertPKCERefusal(t *testing.T, err error) {
	t.Helper()
	var ae *engine.AuthorizeError
	if !errors.As(err, &ae) {
		t.Fatalf("got error %v (%T), want an *engine.AuthorizeError", err, err)
	}
	if ae.Err.Code != engine.CodeInvalidRequest {
		t.Errorf("got %s, want invalid_request", ae.Err.Code)
	}
	if !strings.HasPrefix(ae.RedirectURL, nativeRedirect+"?") || !strings.Contains(ae.RedirectURL, "state="+testState) {
		t.Errorf("got redirect %q, want the client's redirect URI with state", ae.RedirectURL)
	}
}

// FuzzPKCEParameters sends authorization requests with arbitrary
// code_challenge and code_challenge_method through the real provider, with
// and without InsecureAllowPlainPKCE. What ParseAuthorizeRequest accepts must be
// PKCE as configured: method S256 (or plain, when allowed) and a challenge
// of RFC 7636 §4.2's form; an S256 challenge is moreover the 43-character
// base64url encoding of a SHA-256 digest. And what it accepts, IssueCode
// must accept too: refusing the request only after the user has logged in
// is too late. What it refuses is invalid_request, sent to the client.
func FuzzPKCEParameters(f *testing.F) {
	quiet := func(c *Config) { c.Logger = slog.New(slog.DiscardHandler) }
	strict := newTestEnv(f, quiet)
	plain := newTestEnv(f, func(c *Config) { quiet(c); c.InsecureAllowPlainPKCE = true })
	for _, c := range pkceCases {
		f.Add(c.challenge, c.method, false)
		f.Add(c.challenge, c.method, true)
	}
	f.Fuzz(func(t *testing.T, challenge, method string, allowPlain bool) {
		e := strict
		if allowPlain {
			e = plain
		}
		got := checkPKCE(t, e, challenge, method)
		if got.parseErr != nil {
			assertPKCERefusal(t, got.parseErr)
			return
		}
		switch {
		case method == "S256":
			if len(challenge) != 43 || strings.ContainsAny(challenge, ".~") || !validPKCEChallenge(challenge) {
				t.Errorf("accepted S256 challenge %q: want 43 base64url characters", challenge)
			}
		case allowPlain && (method == "plain" || method == ""):
			if !validPKCEChallenge(challenge) {
				t.Errorf("accepted plain challenge %q: want 43 to 128 of [A-Za-z0-9-._~]", challenge)
			}
		default:
			t.Errorf("accepted code_challenge_method %q (InsecureAllowPlainPKCE %v)", method, allowPlain)
		}
		if got.issueErr != nil {
			t.Errorf("challenge %q method %q: ParseAuthorizeRequest accepted it but IssueCode refused it after the login: %v", challenge, method, got.issueErr)
		}
	})
}

// pkceCases are the seeds of FuzzPKCEParameters and the table of
// TestPKCEParameters.
var pkceCases = []struct {
	name              string
	challenge, method string
	wantStrict        bool // accepted by default
	wantPlain         bool // accepted with InsecureAllowPlainPKCE
}{
	{"S256", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "S256", true, true},
	{"S256TooShort", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-c", "S256", false, false},
	{"S256TooLong", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cMA", "S256", false, false},
	{"S256Padded", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM=", "S256", false, false},
	{"S256StdAlphabet", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM", "S256", false, false},
	{"S256Verifier128", strings.Repeat("a", 128), "S256", false, false},
	{"S256Unicode", strings.Repeat("é", 22)[:43], "S256", false, false},
	{"NoChallenge", "", "", false, false},
	{"NoChallengeS256", "", "S256", false, false},
	{"Plain", "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", "plain", false, true},
	{"PlainImplied", "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", "", false, true},
	{"PlainUnreserved", "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOE.~X", "plain", false, true},
	{"Plain128", strings.Repeat("a", 128), "plain", false, true},
	{"Plain129", strings.Repeat("a", 129), "plain", false, false},
	{"Plain42", strings.Repeat("a", 42), "plain", false, false},
	{"PlainSpace", "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOE jXk", "plain", false, false},
	{"UnknownMethod", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "S512", false, false},
	{"LowercaseMethod", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "s256", false, false},
	{"MethodTrailingSpace", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", "S256 ", false, false},
}

// TestPKCEParameters runs the seeds of FuzzPKCEParameters as a table, with
// and without InsecureAllowPlainPKCE: each request is accepted or refused by
// ParseAuthorizeRequest, before the user is asked to log in, and what is
// accepted is also issued a code.
func TestPKCEParameters(t *testing.T) {
	strict := newTestEnv(t, nil)
	plain := newTestEnv(t, func(c *Config) { c.InsecureAllowPlainPKCE = true })
	for _, tc := range pkceCases {
		t.Run(tc.name, func(t *testing.T) {
			for _, run := range []struct {
				e          *testEnv
				allowPlain bool
				want       bool
			}{{strict, false, tc.wantStrict}, {plain, true, tc.wantPlain}} {
				got := checkPKCE(t, run.e, tc.challenge, tc.method)
				switch {
				case run.want && got.parseErr != nil:
					t.Errorf("InsecureAllowPlainPKCE %v: ParseAuthorizeRequest: got error %v, want nil", run.allowPlain, got.parseErr)
				case run.want && got.issueErr != nil:
					t.Errorf("InsecureAllowPlainPKCE %v: IssueCode: got error %v, want nil", run.allowPlain, got.issueErr)
				case !run.want && got.parseErr == nil:
					t.Errorf("InsecureAllowPlainPKCE %v: ParseAuthorizeRequest accepted it (IssueCode then returned %v), want invalid_request", run.allowPlain, got.issueErr)
				case !run.want:
					assertPKCERefusal(t, got.parseErr)
				}
			}
		})
	}
}

// TestPlainPKCEFlow: with InsecureAllowPlainPKCE, a plain challenge is redeemed with
// the same string as verifier, and not with another.
func TestPlainPKCEFlow(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.InsecureAllowPlainPKCE = true })
	const verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
	issue := func() issued {
		areq, err := e.p.parseAuthorizeRequest(t.Context(), authorizeRequest(authorizeQuery(verifier, "plain")))
		if err != nil {
			t.Fatalf("ParseAuthorizeRequest: %v", err)
		}
		to, err := e.p.issueCode(t.Context(), areq, Login{Subject: testSubject})
		if err != nil {
			t.Fatalf("IssueCode: %v", err)
		}
		u, err := url.Parse(to)
		if err != nil {
			t.Fatal(err)
		}
		return issued{code: u.Query().Get("code"), verifier: verifier, clientID: nativeID, redirectURI: nativeRedirect}
	}
	if _, err := e.redeem(t.Context(), issue()); err != nil {
		t.Errorf("redeem with the plain verifier: got error %v, want nil", err)
	}
	c := issue()
	c.verifier = strings.Repeat("x", 43)
	if _, err := e.redeem(t.Context(), c); err == nil || asError(t, err).Code != engine.CodeInvalidGrant {
		t.Errorf("redeem with another verifier: got error %v, want invalid_grant", err)
	}
}

// FuzzRedirectURIRegistered checks redirect URI matching on arbitrary
// requests against a registered loopback URI, a custom scheme and an https
// URI: it never panics, and a match other than the exact string is the
// registered loopback URI of a native client with only the port changed
// (RFC 8252 §7.3): http, the same host literal, a port from 1 to 65535, no
// userinfo, the same path and query.
func FuzzRedirectURIRegistered(f *testing.F) {
	registered := []string{"http://127.0.0.1/callback", "http://[::1]:8080/cb?x=1", "com.example.app:/oauth2redirect", "https://app.example.com/cb"}
	for _, seed := range []string{
		"http://127.0.0.1/callback", "http://127.0.0.1:1/callback", "http://127.0.0.1:65536/callback",
		"http://[::1]/cb?x=1", "http://[::1]:9/cb?x=1", "http://[::1]:9/cb?x=2", "HTTP://127.0.0.1:5/callback",
		"http://a%2F@127.0.0.1:5/callback", "http://127.0.0.1:5/callback#f", "https://app.example.com:1/cb",
		"http://127.0.0.1:5:6/callback", "http://127.0.0.1:+5/callback",
	} {
		f.Add(seed, true)
		f.Add(seed, false)
	}
	f.Fuzz(func(t *testing.T, requested string, native bool) {
		c := &store.Client{ID: "app", Native: native, RedirectURIs: registered}
		if !redirectURIRegistered(c, requested) || slices.Contains(registered, requested) {
			return
		}
		if !native {
			t.Fatalf("matched %q for a client that is not native", requested)
		}
		u, err := url.Parse(requested)
		if err != nil {
			t.Fatalf("matched %q, which does not parse: %v", requested, err)
		}
		port, perr := strconv.Atoi(u.Port())
		if u.Port() == "" && !strings.HasSuffix(u.Host, ":") {
			port, perr = 80, nil // no port: the registered URI with its port left out
		}
		if u.Scheme != "http" || !strings.HasPrefix(requested, "http://") || u.User != nil || perr != nil || port < 1 || port > 65535 {
			t.Fatalf("matched %q: want http://, no userinfo and no port or one from 1 to 65535", requested)
		}
		var found bool
		for _, reg := range registered {
			r, err := url.Parse(reg)
			if err == nil && r.Scheme == "http" && r.Hostname() == u.Hostname() && r.EscapedPath() == u.EscapedPath() && r.RawQuery == u.RawQuery && u.Fragment == "" {
				found = true
			}
		}
		if !found {
			t.Fatalf("matched %q, which is no registered loopback URI with another port", requested)
		}
	})
}
