package middleware_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/pixieauth/pixie/middleware"
)

// swappableKeys is a KeySet whose keys the test replaces, as a provider's
// JWKS changes when a key is retired.
type swappableKeys struct{ set atomic.Pointer[jwk.Set] }

func (s *swappableKeys) Keys(context.Context) (jwk.Set, error) { return *s.set.Load(), nil }

// TestSignatureCache: a token met again skips only the signature check:
// its claims are checked every time (it expires on time), and once its key
// leaves the key set it is refused although its signature was checked
// before; a token that differs by one byte is checked afresh.
func TestSignatureCache(t *testing.T) {
	for _, size := range []int{0, 2, -1} { // default, tiny (evicting), off
		t.Run(map[int]string{0: "default", 2: "two entries", -1: "off"}[size], func(t *testing.T) {
			a, b := sharedKey(t, "cache-a", "ES256"), sharedKey(t, "cache-b", "ES256")
			keys := &swappableKeys{}
			both := setOf(t, a, b)
			keys.set.Store(&both)
			now := t0
			v := newVerifier(t, middleware.Config{KeySet: keys, Now: func() time.Time { return now }, SignatureCacheSize: size})
			ctx := t.Context()
			tokA, tokB := token(t, a, t0), token(t, b, t0)
			for range 3 {
				for _, tok := range []string{tokA, tokB, token(t, a, t0)} {
					if _, err := v.Verify(ctx, tok); err != nil {
						t.Fatalf("valid token: %v", err)
					}
				}
			}
			// One byte changed in the signature: checked, and refused.
			forged := tokA[:len(tokA)-2] + map[bool]string{true: "AA", false: "BB"}[tokA[len(tokA)-2:] != "AA"]
			if _, err := v.Verify(ctx, forged); !errors.Is(err, middleware.ReasonSignature) {
				t.Errorf("altered signature after the token was cached: got %v, want ReasonSignature", err)
			}
			// Expiry is checked on every call.
			now = t0.Add(24 * time.Hour)
			if _, err := v.Verify(ctx, tokA); !errors.Is(err, middleware.ErrExpired) {
				t.Errorf("cached token a day later: got %v, want ErrExpired", err)
			}
			now = t0
			// Key a retired: its cached token is refused.
			onlyB := setOf(t, b)
			keys.set.Store(&onlyB)
			if _, err := v.Verify(ctx, tokA); !errors.Is(err, middleware.ReasonUnknownKey) {
				t.Errorf("cached token of a retired key: got %v, want ReasonUnknownKey", err)
			}
			if _, err := v.Verify(ctx, tokB); err != nil {
				t.Errorf("token of the remaining key: %v", err)
			}
		})
	}
}

// TestSignatureCacheCopies: a caller that changes the claims it got does not
// change what the next caller of the same token gets.
func TestSignatureCacheCopies(t *testing.T) {
	k := sharedKey(t, "cache-copy", "RS256")
	v := newVerifier(t, middleware.Config{KeySet: middleware.StaticKeys(setOf(t, k)), Now: fixed(t0)})
	tok := token(t, k, t0)
	first, err := v.Verify(t.Context(), tok)
	if err != nil {
		t.Fatal(err)
	}
	first.Claims["sub"] = "mallory"
	first.Claims["aud"] = []any{"elsewhere"}
	again, err := v.Verify(t.Context(), tok)
	if err != nil {
		t.Fatalf("the token met again: %v", err)
	}
	if again.Claims["sub"] == "mallory" || again.Subject == "mallory" {
		t.Errorf("got sub %v, want the token's: a caller's change leaked into the cache", again.Claims["sub"])
	}
}
