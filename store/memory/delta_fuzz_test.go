package memory

import (
	"bytes"
	"testing"
)

// FuzzDelta: a delta of any Data against any base decodes to that Data, and
// decoding arbitrary bytes as a delta never panics: it answers the bytes a
// well-formed delta describes, or an error.
func FuzzDelta(f *testing.F) {
	f.Add([]byte(`{"id":"a","scope":["openid"]}`), []byte(`{"id":"a","scope":["openid","offline_access"]}`), []byte{})
	f.Add([]byte("aaaaaaaaaaaaaaaa"), []byte("aaaaaaaabaaaaaaaa"), []byte{0x10, 0x21, 0x00})
	f.Fuzz(func(t *testing.T, base, data, raw []byte) {
		d, ok := encodeDelta(nil, string(base), data, 1<<20)
		if !ok {
			t.Fatalf("no delta of %d bytes under a limit of 1 MiB", len(data))
		}
		got, err := decodeDelta(string(base), string(d))
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("base %q data %q: decoded %q, %v", base, data, got, err)
		}
		_, _ = decodeDelta(string(base), string(raw))
	})
}
