package handlers

import (
	"encoding/json"
	"maps"
	"testing"
)

// TestFlatStringObject: the direct decoding of the login cookie's values
// yields what json.Unmarshal does whenever it takes the input, and leaves
// everything else (escapes, non-ASCII, whitespace, other types, trailing
// data) to it, adding nothing.
func TestFlatStringObject(t *testing.T) {
	for _, tc := range []struct {
		in   string
		took bool
	}{
		{`{}`, true},
		{`{"sid":"abc","csrf":"d-e_f"}`, true},
		{`{"a":"1","a":"2"}`, true},
		{`{"a":""}`, true},
		{`{"a":"x\"y"}`, false},
		{`{"a":"é"}`, false},
		{`{ "a":"1"}`, false},
		{`{"a":1}`, false},
		{`{"a":"1"}x`, false},
		{`{"a":"1"`, false},
		{`{"a":"1",}`, false},
		{`{"a""1"}`, false},
		{`{"a":"1"}}`, false},
		{`{"a":"1","b":"2","c":"3","d":"4","e":"5","f":"6","g":"7","h":"8","i":"9"}`, false},
	} {
		got := map[any]any{"old": "kept"}
		took := flatStringObject([]byte(tc.in), got)
		if took != tc.took {
			t.Errorf("flatStringObject(%s) took it: %v, want %v", tc.in, took, tc.took)
		}
		if !took {
			if len(got) != 1 {
				t.Errorf("flatStringObject(%s) refused it but added %v", tc.in, got)
			}
			continue
		}
		var m map[string]string
		if err := json.Unmarshal([]byte(tc.in), &m); err != nil {
			t.Fatalf("json.Unmarshal(%s): %v", tc.in, err)
		}
		want := map[any]any{"old": "kept"}
		for k, v := range m {
			want[k] = v
		}
		if !maps.Equal(got, want) {
			t.Errorf("flatStringObject(%s) = %v, want %v", tc.in, got, want)
		}
	}
}

// FuzzFlatStringObject: what the direct decoding takes, json.Unmarshal
// decodes to the same values.
func FuzzFlatStringObject(f *testing.F) {
	f.Add([]byte(`{"sid":"abc","csrf":"def"}`))
	f.Add([]byte(`{"a":"1","a":"2"}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		got := map[any]any{}
		if !flatStringObject(in, got) {
			if len(got) != 0 {
				t.Fatalf("refused %q but added %v", in, got)
			}
			return
		}
		var m map[string]string
		if err := json.Unmarshal(in, &m); err != nil {
			t.Fatalf("took %q, which json.Unmarshal refuses: %v", in, err)
		}
		if len(m) != len(got) {
			t.Fatalf("%q: got %v, want %v", in, got, m)
		}
		for k, v := range m {
			if got[k] != v {
				t.Fatalf("%q: got %v, want %v", in, got, m)
			}
		}
	})
}
