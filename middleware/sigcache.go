package middleware

import (
	"crypto/sha256"
	"time"
)

// defaultSignatureCacheSize is how many verified tokens a Verifier
// remembers by default (Config.SignatureCacheSize documents it).
const defaultSignatureCacheSize = 10000

// sigCache remembers tokens whose signature checked out: by the SHA-256 of
// the whole token, the key that verified it and the decoded claims. An app
// calls its API many times with one access token, and checking the
// signature and decoding the claims are most of the cost of a validation; a
// token met again skips those only, while its claims (exp above all) are
// checked on every call. An entry counts only while its key is still in the
// key set (the same *verifyKey the lookup returns), so a key removed from
// the JWKS stops its tokens at once. Safe for concurrent use; bounded,
// evicting the oldest entry when full.
type sigCache struct{ c *tokenCache[sigEntry] }

type sigEntry struct {
	key    *verifyKey
	claims map[string]any // never handed out: callers get copies
}

func newSigCache(size int) *sigCache {
	if size <= 0 {
		return nil
	}
	return &sigCache{newTokenCache[sigEntry](size)}
}

// claims returns a copy of the claims of the token with this digest if key
// verified it, or nil.
func (c *sigCache) claims(sum [sha256.Size]byte, key *verifyKey) map[string]any {
	if c == nil {
		return nil
	}
	e, ok := c.c.get(sum, time.Time{})
	if !ok || e.key != key {
		return nil
	}
	return copyJSON(e.claims).(map[string]any)
}

// add remembers that key verified the token with this digest and these
// claims (a copy is kept).
func (c *sigCache) add(sum [sha256.Size]byte, key *verifyKey, claims map[string]any) {
	if c == nil {
		return
	}
	c.c.put(sum, sigEntry{key, copyJSON(claims).(map[string]any)}, time.Time{}, time.Time{})
}

// copyJSON deep-copies a value decoded by encoding/json.
func copyJSON(v any) any {
	switch v := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, x := range v {
			m[k] = copyJSON(x)
		}
		return m
	case []any:
		s := make([]any, len(v))
		for i, x := range v {
			s[i] = copyJSON(x)
		}
		return s
	default: // string, float64, bool, nil: immutable
		return v
	}
}
