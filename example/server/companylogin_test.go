package main

import (
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// TestCompanyLogin: with -login company, users who must log in are sent to
// the app's own /company/login, which completes pixie's pending request
// through handlers.PendingLogin: the app gets a code, and tokens for the
// employee the company login authenticated.
func TestCompanyLogin(t *testing.T) {
	const password = "company-pw-7Qx"
	s := start(t, nil, "-login", "company", "-demo-password", password)
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	var final *url.URL
	client := &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if req.URL.Scheme != "http" { // the app's custom scheme: stop here
			final = req.URL
			return http.ErrUseLastResponse
		}
		return nil
	}}
	conf := s.app()
	verifier := oauth2.GenerateVerifier()
	authURL := conf.AuthCodeURL("state-0123456789", oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("nonce", "nonce-0123456789"))

	resp, err := client.Get(authURL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Request.URL.Path != "/company/login" || resp.StatusCode != http.StatusOK {
		t.Fatalf("authorize: landed on %s (%d), want the company login page", resp.Request.URL, resp.StatusCode)
	}
	loginURL := resp.Request.URL.String()

	post := func(employee, pw string) *http.Response {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, loginURL,
			strings.NewReader(url.Values{"employee": {employee}, "password": {pw}}.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", s.url)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if post("alice", "wrong"); final != nil {
		t.Fatalf("a wrong company password reached the app: %s", final)
	}
	post("alice", password)
	if final == nil || final.Query().Get("code") == "" || final.Query().Get("state") != "state-0123456789" {
		t.Fatalf("after the company login: got redirect %v, want the app's redirect with a code and the state", final)
	}
	tok, err := conf.Exchange(t.Context(), final.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatalf("exchange: %v", err)
	}
	p, err := oidc.NewProvider(t.Context(), s.url)
	if err != nil {
		t.Fatal(err)
	}
	idt, err := p.Verifier(&oidc.Config{ClientID: "example-native"}).Verify(t.Context(), tok.Extra("id_token").(string))
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		AMR []string `json:"amr"`
	}
	if err := idt.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	if idt.Subject != "alice" || len(claims.AMR) != 1 || claims.AMR[0] != "pwd" {
		t.Errorf("got sub %q amr %v, want alice [pwd]", idt.Subject, claims.AMR)
	}
}
