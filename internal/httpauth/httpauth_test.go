package httpauth

import (
	"strings"
	"testing"
)

func TestCredentials(t *testing.T) {
	long := strings.Repeat("a", MaxTokenLen)
	tests := []struct {
		name, header  string
		scheme, token string
		ok            bool
	}{
		{"Bearer", "Bearer mF_9.B5f-4.1JqM", "Bearer", "mF_9.B5f-4.1JqM", true},
		{"DPoPAnyCase", "dpop abc==", "dpop", "abc==", true},
		{"SeveralSpaces", "Bearer   abc", "Bearer", "abc", true},
		{"LongestToken", "Bearer " + long, "Bearer", long, true},
		{"TooLong", "Bearer " + long + "a", "Bearer", "", false},
		{"NoToken", "Bearer", "Bearer", "", false},
		{"EmptyToken", "Bearer ", "Bearer", "", false},
		{"Tab", "Bearer\tabc", "Bearer\tabc", "", false},
		{"TwoTokens", "Bearer a b", "Bearer", "", false},
		{"PaddingOnly", "Bearer ==", "Bearer", "", false},
		{"PaddingInside", "Bearer a=b", "Bearer", "", false},
		{"NonASCII", "Bearer abc\u00a0", "Bearer", "", false},
		{"Empty", "", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			scheme, token, ok := Credentials(tt.header)
			if scheme != tt.scheme || token != tt.token || ok != tt.ok {
				t.Errorf("Credentials(%.40q) = %q, %.20q, %v; want %q, %.20q, %v", tt.header, scheme, token, ok, tt.scheme, tt.token, tt.ok)
			}
		})
	}
}

func TestIsLoopbackHost(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "LocalHost": true, "127.0.0.1": true, "127.1.2.3": true, "::1": true,
		"[::1]": false, "localhost.example.com": false, "10.0.0.1": false, "example.com": false, "": false,
	} {
		if got := IsLoopbackHost(host); got != want {
			t.Errorf("IsLoopbackHost(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestChallenge(t *testing.T) {
	tests := []struct {
		name   string
		scheme string
		attrs  []string
		want   string
	}{
		{"Bare", "Bearer", []string{"realm", "pixie"}, `Bearer realm="pixie"`},
		{"EmptyLeftOut", "Bearer", []string{"realm", "", "error", "invalid_token"}, `Bearer error="invalid_token"`},
		{"NoAttributes", "DPoP", nil, `DPoP`},
		{"Several", "DPoP", []string{"algs", "ES256 RS256", "error", "invalid_dpop_proof", "error_description", "bad"},
			`DPoP algs="ES256 RS256", error="invalid_dpop_proof", error_description="bad"`},
		{"QuotesBackslashesAndNonASCIIDropped", "Bearer", []string{"error_description", "a \"b\" \\c §7\n"},
			`Bearer error_description="a b c 7"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Challenge(tt.scheme, tt.attrs...); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
