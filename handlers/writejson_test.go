package handlers

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"testing"
)

// TestWriteJSONAsEncoder: writeJSON's direct path writes exactly what
// json.Encoder writes, for token responses and for every value it must
// leave to encoding/json (strings to escape, other types), which then take
// the encoder's path.
func TestWriteJSONAsEncoder(t *testing.T) {
	cases := []map[string]any{
		{},
		{"access_token": "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln", "token_type": "bearer", "expires_in": int64(3600),
			"scope": "openid offline_access", "refresh_token": "ory_rt_abc.def", "id_token": "a.b.c"},
		{"request_uri": "urn:ietf:params:oauth:request_uri:abc", "expires_in": 60},
		{"active": true, "n": -7, "ok": false},
		{"html": "a<b>&c"},
		{"quote": `say "hi"`, "slash": `a\b`},
		{"ctl": "a\nb\tc\x01", "del": "x\x7fy"},
		{"utf8": "é ☃ \u2028", "bad": "\xff"},
		{"<name>": "v"},
		{"float": 1.5, "nil": nil, "list": []string{"a"}},
	}
	for _, m := range cases {
		var want bytes.Buffer
		if err := json.NewEncoder(&want).Encode(m); err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		writeJSON(rec, 200, m)
		if got := rec.Body.String(); got != want.String() {
			t.Errorf("writeJSON(%v) = %q, want %q", m, got, want.String())
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" {
			t.Errorf("Content-Type %q", ct)
		}
	}
	if _, ok := appendFlatJSON(nil, cases[1]); !ok {
		t.Error("a token response did not take the direct path")
	}
}

// FuzzAppendFlatJSON: whenever the direct path takes a string, it writes
// what encoding/json writes.
func FuzzAppendFlatJSON(f *testing.F) {
	f.Add("access_token", "abc.def", int64(3600))
	f.Add("k", "a<b", int64(-1))
	f.Fuzz(func(t *testing.T, k, v string, n int64) {
		m := map[string]any{k: v, k + "_n": n, "t": true}
		b, ok := appendFlatJSON(nil, m)
		if !ok {
			return
		}
		var want bytes.Buffer
		if err := json.NewEncoder(&want).Encode(m); err != nil {
			t.Fatal(err)
		}
		if string(b) != want.String() {
			t.Errorf("appendFlatJSON(%v) = %q, want %q", m, b, want.String())
		}
	})
}
