package handlers_test

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/pixieauth/pixie/handlers"
	"github.com/pixieauth/pixie/internal/engine"
	"github.com/pixieauth/pixie/internal/testbrowser"
)

// Fuzz targets for every entry point that takes outside input: the real
// handlers on a real provider and memory store, called in process. Each
// asserts that no input panics, none gets a 5xx (the memory store does not
// fail, so any 5xx blames client input on the server), and no response
// (headers and body) is larger than maxFuzzResponse. Inputs are at most
// maxFuzzInput bytes: a response that echoes input could grow with it
// otherwise. Without -fuzz, the seeds run as ordinary tests.

const (
	maxFuzzInput    = 8 << 10
	maxFuzzResponse = 64 << 10
)

// fuzzEnv is a server with alice logged in once, and the artifacts of a real
// flow for seeds.
type fuzzEnv struct {
	ts      *testServer
	h       http.Handler
	cookie  *http.Cookie // alice's login session
	authURL *url.URL     // a valid authorization request, not yet answered
	code    string       // a code, not redeemed
	ar      *authRequest // the request that code answers
	access  string       // an access token
	refresh string       // a refresh token
	idToken string       // an ID token
}

func newFuzzEnv(f *testing.F) *fuzzEnv {
	f.Helper()
	ctx := context.Background()
	ts, err := startServer(ctx, serverOptions{Handlers: &handlers.Config{}})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(ts.Server.Close)
	e := &fuzzEnv{ts: ts, h: ts.Server.Config.Handler}
	conf := ts.oauth2Config(nativeClient, ts.loopbackRedirect(), allScopes)
	client := testbrowser.NewClient()
	login := func(ar *authRequest) string {
		to, err := testbrowser.Login(ctx, client, ar.URL, aliceUsername, alicePassword)
		if err != nil {
			f.Fatalf("login: %v", err)
		}
		return to.Query().Get("code")
	}
	first := newAuthRequest(conf)
	tok, err := first.exchange(ctx, login(first))
	if err != nil {
		f.Fatalf("exchange: %v", err)
	}
	e.access, e.refresh = tok.AccessToken, tok.RefreshToken
	e.idToken, _ = tok.Extra("id_token").(string)
	e.ar = newAuthRequest(conf)
	e.code = login(e.ar)
	issuer, _ := url.Parse(ts.URL)
	for _, c := range client.Jar.Cookies(issuer) {
		e.cookie = c
	}
	if e.cookie == nil || e.code == "" || e.idToken == "" {
		f.Fatal("the seed flow left no cookie, code or ID token")
	}
	e.authURL, _ = url.Parse(newAuthRequest(conf).URL)
	return e
}

// serve runs req through the handlers and checks the response.
func (e *fuzzEnv) serve(t *testing.T, req *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	checkFuzzResponse(t, req.Method+" "+req.URL.Path, rec)
	return rec
}

// checkFuzzResponse fails t for a 5xx or an oversized response.
func checkFuzzResponse(t *testing.T, what string, rec *httptest.ResponseRecorder) {
	t.Helper()
	if rec.Code >= 500 {
		t.Fatalf("%s: got %d for client input, want no 5xx; body: %.300s", what, rec.Code, rec.Body)
	}
	size := rec.Body.Len()
	for k, vs := range rec.Header() {
		for _, v := range vs {
			size += len(k) + len(v)
		}
	}
	if size > maxFuzzResponse {
		t.Fatalf("%s: got a %d-byte response to at most %d bytes of input, want at most %d", what, size, maxFuzzInput, maxFuzzResponse)
	}
}

// tooLong reports whether the inputs exceed maxFuzzInput together.
func tooLong(in ...string) bool {
	n := 0
	for _, s := range in {
		n += len(s)
	}
	return n > maxFuzzInput
}

func newFuzzRequest(method, target, body, contentType string) *http.Request {
	req := httptest.NewRequest(method, "/", strings.NewReader(body))
	// The target is fuzzed: set it without httptest's parse, which panics
	// on a malformed one. An unparsable target never reaches a handler.
	u, err := url.ParseRequestURI(target)
	if err != nil {
		return nil
	}
	req.URL, req.RequestURI = u, target
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return req
}

// FuzzAuthorize fuzzes the authorization request's query (GET) or form
// (POST), with and without a login session.
func FuzzAuthorize(f *testing.F) {
	e := newFuzzEnv(f)
	valid := e.authURL.RawQuery
	f.Add(valid, "", false, false)
	f.Add(valid, "", false, true)
	f.Add("", valid, true, true)
	f.Add(valid+"&prompt=none", "", false, false)
	f.Add(valid+"&prompt=login&max_age=0", "", false, true)
	f.Add(valid+"&state=a&state=b", "", false, true)
	f.Add(strings.Replace(valid, "code_challenge_method=S256", "code_challenge_method=plain", 1), "", false, true)
	f.Add("response_type=code&client_id=nobody&redirect_uri=https%3A%2F%2Fevil.example", "", false, false)
	f.Add(valid+"&audience=https%3A%2F%2Fapi.example.com&resource=x", "", false, true)
	f.Add("%zz", "a=%zz", true, false)
	f.Fuzz(func(t *testing.T, query, body string, post, loggedIn bool) {
		if tooLong(query, body) {
			return
		}
		method, ct := http.MethodGet, ""
		if post {
			method, ct = http.MethodPost, "application/x-www-form-urlencoded"
		}
		req := newFuzzRequest(method, handlers.PathAuthorize+"?"+query, body, ct)
		if req == nil {
			return
		}
		if loggedIn {
			req.AddCookie(e.cookie)
		}
		e.serve(t, req)
	})
}

// FuzzTokenForm fuzzes the token request's form and its Authorization
// header.
func FuzzTokenForm(f *testing.F) {
	e := newFuzzEnv(f)
	exchange := url.Values{
		"grant_type": {"authorization_code"}, "code": {e.code}, "code_verifier": {e.ar.Verifier},
		"redirect_uri": {e.ar.Conf.RedirectURL}, "client_id": {nativeClient},
	}.Encode()
	f.Add(exchange, "")
	f.Add(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {e.refresh}, "client_id": {nativeClient}}.Encode(), "")
	f.Add(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {e.access}}.Encode(), basicAuth(webClient, apiSecret))
	f.Add(url.Values{"grant_type": {"client_credentials"}, "scope": {"openid"}}.Encode(), basicAuth(apiClient, apiSecret))
	f.Add("grant_type=password&username=alice&password=x", "")
	f.Add(exchange+"&code=again", "Bearer "+e.access)
	f.Add("grant_type=authorization_code&code=%zz", "Basic %%%")
	f.Fuzz(func(t *testing.T, body, authorization string) {
		if tooLong(body, authorization) {
			return
		}
		req := newFuzzRequest(http.MethodPost, handlers.PathToken, body, "application/x-www-form-urlencoded")
		if authorization != "" {
			req.Header.Set("Authorization", authorization)
		}
		e.serve(t, req)
	})
}

// FuzzBasicAuth fuzzes HTTP Basic client credentials (RFC 6749 §2.3.1) at
// every endpoint that takes them, encoded and raw.
func FuzzBasicAuth(f *testing.F) {
	e := newFuzzEnv(f)
	for _, cred := range []string{
		url.QueryEscape(apiClient) + ":" + url.QueryEscape(apiSecret),
		apiClient + ":" + apiSecret, // not form-encoded
		webClient + ":wrong",
		"nobody:x", ":", "", "%zz:%zz", "example-api",
	} {
		f.Add(cred, false)
	}
	f.Add("bm90OmJhc2U2NA===", true)
	f.Fuzz(func(t *testing.T, cred string, raw bool) {
		if tooLong(cred) {
			return
		}
		header := "Basic " + base64.StdEncoding.EncodeToString([]byte(cred))
		if raw {
			header = "Basic " + cred
		}
		for _, rq := range []struct{ path, body string }{
			{handlers.PathToken, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {e.refresh}}.Encode()},
			{handlers.PathIntrospect, url.Values{"token": {e.access}}.Encode()},
			{handlers.PathRevoke, url.Values{"token": {"not-a-token"}}.Encode()},
		} {
			req := newFuzzRequest(http.MethodPost, rq.path, rq.body, "application/x-www-form-urlencoded")
			req.Header.Set("Authorization", header)
			e.serve(t, req)
		}
	})
}

// FuzzUserInfoBearer fuzzes the Authorization header at the UserInfo
// endpoint, and the form of a POST to it.
func FuzzUserInfoBearer(f *testing.F) {
	e := newFuzzEnv(f)
	for _, h := range []string{
		"Bearer " + e.access, "bearer " + e.access, "Bearer  " + e.access + " ", "Bearer " + e.refresh,
		"Bearer " + e.idToken, "Bearer", "Bearer ", "Basic " + e.access, "Bearer a.b.c", "Bearer ===",
		"Bearer " + e.access[:len(e.access)/2], "",
	} {
		f.Add(h, "")
	}
	f.Add("", "access_token="+url.QueryEscape(e.access))
	f.Fuzz(func(t *testing.T, authorization, body string) {
		if tooLong(authorization, body) {
			return
		}
		method, ct := http.MethodGet, ""
		if body != "" {
			method, ct = http.MethodPost, "application/x-www-form-urlencoded"
		}
		req := newFuzzRequest(method, handlers.PathUserInfo, body, ct)
		if authorization != "" {
			req.Header.Set("Authorization", authorization)
		}
		e.serve(t, req)
	})
}

// FuzzLogoutIDTokenHint fuzzes id_token_hint and the other parameters of
// RP-initiated logout, by GET and by POST.
func FuzzLogoutIDTokenHint(f *testing.F) {
	e := newFuzzEnv(f)
	redirect := url.QueryEscape(e.ar.Conf.RedirectURL)
	f.Add(e.idToken, "", false)
	f.Add(e.idToken, "post_logout_redirect_uri="+redirect+"&state=s&client_id="+nativeClient, false)
	f.Add(e.idToken, "post_logout_redirect_uri=https%3A%2F%2Fevil.example", true)
	f.Add(e.access, "", true)
	f.Add(strings.Repeat(".", 64), "", false)
	f.Add("e30.e30.", "client_id=nobody", false)
	f.Add("", "ui_locales=en&logout_hint=alice", false)
	f.Fuzz(func(t *testing.T, hint, params string, post bool) {
		if tooLong(hint, params) {
			return
		}
		q := "id_token_hint=" + url.QueryEscape(hint)
		if params != "" {
			q += "&" + params
		}
		var req *http.Request
		if post {
			req = newFuzzRequest(http.MethodPost, handlers.PathLogout, q, "application/x-www-form-urlencoded")
		} else {
			req = newFuzzRequest(http.MethodGet, handlers.PathLogout+"?"+q, "", "")
		}
		if req == nil {
			return
		}
		req.AddCookie(e.cookie)
		e.serve(t, req)
	})
}

// FuzzPendingLogin fuzzes the request a host app's login page passes to
// Server.PendingLogin: its query, and a posted form of any content type.
// The error must be ErrNoPending or an AuthorizeError that blames the
// client, never the server.
func FuzzPendingLogin(f *testing.F) {
	e := newFuzzEnv(f)
	valid := e.authURL.RawQuery
	f.Add(valid, "", "")
	f.Add("", "pixie_request="+url.QueryEscape(valid), "application/x-www-form-urlencoded")
	f.Add("", "--b\r\nContent-Disposition: form-data; name=\"pixie_request\"\r\n\r\n"+valid+"\r\n--b--\r\n", "multipart/form-data; boundary=b")
	f.Add("client_id=nobody", "", "")
	f.Add("x=1", "pixie_request=%zz", "application/x-www-form-urlencoded")
	f.Fuzz(func(t *testing.T, query, body, contentType string) {
		if tooLong(query, body, contentType) {
			return
		}
		method := http.MethodGet
		if body != "" || contentType != "" {
			method = http.MethodPost
		}
		req := newFuzzRequest(method, "/app/login?"+query, body, contentType)
		if req == nil {
			return
		}
		p, err := e.ts.Handlers.PendingLogin(req)
		var ae *engine.AuthorizeError
		switch {
		case err == nil:
			if p.ClientID == "" {
				t.Fatal("PendingLogin: no error and no client")
			}
		case errors.Is(err, handlers.ErrNoPending):
		case errors.As(err, &ae):
			if ae.Err.Status >= 500 {
				t.Fatalf("PendingLogin: got %v (status %d) for client input, want a client error", err, ae.Err.Status)
			}
			if len(ae.RedirectURL) > maxFuzzResponse {
				t.Fatalf("PendingLogin: got a %d-byte redirect, want at most %d", len(ae.RedirectURL), maxFuzzResponse)
			}
		default:
			t.Fatalf("PendingLogin: got %T %v, want ErrNoPending or an *engine.AuthorizeError", err, err)
		}
	})
}

// FuzzLoginCookie fuzzes the login session cookie on every page that reads
// it.
func FuzzLoginCookie(f *testing.F) {
	e := newFuzzEnv(f)
	v := e.cookie.Value
	for _, s := range []string{v, v[:len(v)/2], v + "x", "", "x", strings.Repeat("A", 200), "MTIz|YWJj|ZGVm", v[1:]} {
		f.Add(s, uint8(0))
	}
	f.Fuzz(func(t *testing.T, value string, page uint8) {
		if tooLong(value) {
			return
		}
		targets := []string{
			handlers.PathAuthorize + "?" + e.authURL.RawQuery,
			handlers.PathLogin + "?" + e.authURL.RawQuery,
			handlers.PathConsent + "?" + e.authURL.RawQuery,
			handlers.PathLogout,
		}
		req := newFuzzRequest(http.MethodGet, targets[int(page)%len(targets)], "", "")
		req.Header.Set("Cookie", e.cookie.Name+"="+value)
		e.serve(t, req)
	})
}
