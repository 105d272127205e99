package memory

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/pixieauth/pixie/store"
)

// TestDeltaRoundTrip: every delta decodes to its Data, whatever the base
// and Data, and a delta that would pass its limit is not made.
func TestDeltaRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	alphabet := "ab{}\":,0123456789"
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return b
	}
	for i := range 2000 {
		base := random(rng.IntN(600))
		data := bytes.Clone(base)
		for range rng.IntN(20) { // edits: replace, insert, delete a run
			at := rng.IntN(len(data) + 1)
			run := random(rng.IntN(12))
			switch rng.IntN(3) {
			case 0:
				data = append(data[:at:at], append(run, data[at:]...)...)
			case 1:
				data = append(data[:at:at], data[min(len(data), at+len(run)):]...)
			default:
				copy(data[at:], run)
			}
		}
		if rng.IntN(10) == 0 {
			data = random(rng.IntN(100))
		}
		d, ok := encodeDelta(nil, string(base), data, 1<<20)
		got, err := decodeDelta(string(base), string(d))
		if !ok || err != nil || !bytes.Equal(got, data) {
			t.Fatalf("case %d: base %q data %q: decoded %q, %v", i, base, data, got, err)
		}
		// The limit is conservative by up to a few varints' length.
		if limited, ok := encodeDelta(nil, string(base), data, len(d)-1); ok || len(limited) >= len(d)+2*binary.MaxVarintLen64 {
			t.Fatalf("case %d: a delta of %d bytes made under a limit of %d (%d bytes written)", i, len(d), len(d)-1, len(limited))
		}
	}
}

// TestDeltaCorrupt: a delta that does not fit its base is an error, not a
// panic or a wrong answer.
func TestDeltaCorrupt(t *testing.T) {
	base := "0123456789abcdefghij"
	d, _ := encodeDelta(nil, base, []byte("xx0123456789abcdefyy"), 100)
	good := string(d)
	for _, d := range []string{"", "\x80", good[:len(good)-1], good + "\x02z", "\x05\x0b\x30", "\x05\x0b\x10\x02",
		"\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"} {
		if got, err := decodeDelta(base, d); err == nil {
			t.Errorf("decodeDelta(%q): got %q, want an error", d, got)
		}
	}
}

// TestRotationKeepsDelta: with the Data the provider writes
// (testdata/flow-records.json), the tokens of a rotation hold a delta
// against the first tokens' Data, one shared by the pair, small; and every
// record reads back whole, also once the records whose Data it was
// encoded against are gone.
func TestRotationKeepsDelta(t *testing.T) {
	js, err := os.ReadFile("testdata/flow-records.json")
	if err != nil {
		t.Fatal(err)
	}
	var sample struct{ Records []struct{ Data string } }
	if err := json.Unmarshal(js, &sample); err != nil {
		t.Fatal(err)
	}
	code, first, rotated := sample.Records[0].Data, sample.Records[1].Data, sample.Records[3].Data
	ctx := t.Context()
	s := New()
	now := time.Now()
	mk := func(kind store.Kind, sig, data string, life time.Duration) {
		t.Helper()
		err := s.CreateGrant(ctx, &store.Grant{Kind: kind, Signature: sig, RequestID: "req", ClientID: "native",
			Subject: "alice", ExpiresAt: now.Add(life), Data: []byte(data)})
		if err != nil {
			t.Fatal(err)
		}
	}
	mk(store.KindAuthorizeCode, "code", code, time.Minute)
	mk(store.KindAccessToken, "at1", first, time.Hour)
	mk(store.KindRefreshToken, "rt1", first, 3*time.Hour)
	mk(store.KindAccessToken, "at2", rotated, 2*time.Hour)
	mk(store.KindRefreshToken, "rt2", rotated, 4*time.Hour)
	s.mu.RLock()
	at2, rt2 := s.find(3, "at2"), s.find(4, "rt2")
	if at2.ref == "" || len(at2.data) > len(rotated)/10 || unsafe.StringData(at2.data) != unsafe.StringData(rt2.data) {
		t.Errorf("rotated pair: got Data of %d bytes against a base of %d, shared %v; want one delta under a tenth of %d",
			len(at2.data), len(at2.ref), unsafe.StringData(at2.data) == unsafe.StringData(rt2.data), len(rotated))
	}
	s.mu.RUnlock()
	check := func(when string) {
		t.Helper()
		for sig, want := range map[string]string{"code": code, "at1": first, "rt1": first, "at2": rotated, "rt2": rotated} {
			kind := map[byte]store.Kind{'c': store.KindAuthorizeCode, 'a': store.KindAccessToken, 'r': store.KindRefreshToken}[sig[0]]
			g, err := s.Grant(ctx, kind, sig)
			if err == nil && string(g.Data) != want {
				t.Errorf("%s: %s: got Data %q, want %q", when, sig, g.Data, want)
			}
		}
	}
	check("all there")
	for _, h := range []time.Duration{time.Hour + time.Second, 3*time.Hour + time.Second} {
		if _, err := s.DeleteExpired(ctx, now.Add(h)); err != nil {
			t.Fatal(err)
		}
		check("after " + h.String())
	}
	if g, err := s.Grant(ctx, store.KindRefreshToken, "rt2"); err != nil || !strings.HasPrefix(string(g.Data), "1\n") {
		t.Errorf("rt2 after its base's records expired: %v, %v", g, err)
	}
	checkGrantIndexes(t, s)
}
