package store_test

import (
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"

	"github.com/pixieauth/pixie/store"
)

// phc is the PHC string HashSecret documents: argon2id, version 19, the
// OWASP baseline parameters, a 16-byte salt and a 32-byte key, in unpadded
// standard base64.
var phc = regexp.MustCompile(`^\$argon2id\$v=19\$m=19456,t=2,p=1\$[A-Za-z0-9+/]{22}\$[A-Za-z0-9+/]{43}$`)

func hash(t testing.TB, secret string) string {
	t.Helper()
	h, err := store.HashSecret(secret)
	if err != nil {
		t.Fatalf("HashSecret: %v", err)
	}
	return h
}

// argon2idPHC makes a PHC string with x/crypto/argon2 directly, with the
// given parameters: a hash made elsewhere, or by an older pixie.
func argon2idPHC(secret string, salt []byte, m, t uint32, p uint8, keyLen uint32) string {
	key := argon2.IDKey([]byte(secret), salt, t, m, p, keyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s", m, t, p, b64.EncodeToString(salt), b64.EncodeToString(key))
}

func bcryptHash(t testing.TB, secret string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(secret), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func TestHashSecretFormat(t *testing.T) {
	h := hash(t, "s3cret")
	if !phc.MatchString(h) {
		t.Errorf("got hash %q, want the form %s", h, phc)
	}
	salt, err := base64.RawStdEncoding.DecodeString(strings.Split(h, "$")[4])
	if err != nil || len(salt) != 16 {
		t.Errorf("got salt of %d bytes (%v), want 16", len(salt), err)
	}
}

// TestHashSecretSalted: two hashes of one secret differ, and both verify.
func TestHashSecretSalted(t *testing.T) {
	a, b := hash(t, "same secret"), hash(t, "same secret")
	if a == b {
		t.Fatalf("got the same hash %q twice, want different salts", a)
	}
	for _, h := range []string{a, b} {
		if ok, err := store.CheckSecret(h, "same secret"); !ok || err != nil {
			t.Errorf("CheckSecret(%q): got %v, %v, want true, nil", h, ok, err)
		}
	}
}

// TestCheckSecret: matching and mismatching secrets against argon2id hashes
// made by HashSecret and by argon2 directly with other parameters, and
// against bcrypt hashes of every accepted prefix.
func TestCheckSecret(t *testing.T) {
	const secret = "correct horse battery staple"
	long := strings.Repeat("x", 100)
	bc := bcryptHash(t, secret)
	salt := []byte("0123456789abcdef")
	tests := []struct {
		name   string
		hash   string
		secret string
		want   bool
	}{
		{"Argon2idMatch", hash(t, secret), secret, true},
		{"Argon2idMismatch", hash(t, secret), "correct horse battery stapler", false},
		{"Argon2idEmptySecret", hash(t, ""), "", true},
		{"Argon2idEmptyVsNonEmpty", hash(t, ""), " ", false},
		{"Argon2idCase", hash(t, secret), strings.ToUpper(secret), false},
		{"Argon2idLongSecret", hash(t, long), long, true},
		{"Argon2idLongSecretPrefix", hash(t, long), long[:72], false},
		{"Argon2idUnicode", hash(t, "pässwörd🔑"), "pässwörd🔑", true},
		{"Argon2idOtherParams", argon2idPHC(secret, salt, 8192, 1, 2, 32), secret, true},
		{"Argon2idOtherParamsMismatch", argon2idPHC(secret, salt, 8192, 1, 2, 32), "nope", false},
		{"Argon2id16ByteKey", argon2idPHC(secret, salt, 64, 1, 1, 16), secret, true},
		{"Argon2id64ByteKey", argon2idPHC(secret, salt, 64, 1, 1, 64), secret, true},
		{"Bcrypt2a", bc, secret, true},
		{"Bcrypt2aMismatch", bc, "wrong", false},
		{"Bcrypt2b", "$2b$" + bc[4:], secret, true},
		{"Bcrypt2y", "$2y$" + bc[4:], secret, true},
		{"Bcrypt2bMismatch", "$2b$" + bc[4:], "wrong", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := store.CheckSecret(tc.hash, tc.secret)
			if err != nil {
				t.Fatalf("CheckSecret(%q): got error %v, want nil", tc.hash, err)
			}
			if got != tc.want {
				t.Errorf("CheckSecret(%q, %q): got %v, want %v", tc.hash, tc.secret, got, tc.want)
			}
		})
	}
}

// TestCheckSecretBadHash: anything that is neither an argon2id PHC string
// nor a bcrypt hash is ErrBadHash, never a match.
func TestCheckSecretBadHash(t *testing.T) {
	good := hash(t, "s")
	parts := strings.Split(good, "$") // "", argon2id, v=19, m=…, salt, key
	with := func(i int, v string) string {
		p := append([]string(nil), parts...)
		p[i] = v
		return strings.Join(p, "$")
	}
	bc := bcryptHash(t, "s")
	tests := []struct {
		name string
		hash string
	}{
		{"Empty", ""},
		{"Plaintext", "s"},
		{"Dollar", "$"},
		{"Prefix", "$argon2id$"},
		{"Argon2i", with(1, "argon2i")},
		{"Argon2d", with(1, "argon2d")},
		{"Scrypt", "$scrypt$ln=15,r=8,p=1$c2FsdA$aGFzaA"},
		{"Version16", with(2, "v=16")},
		{"VersionMissing", with(2, "")},
		{"ParamsMissing", with(3, "")},
		{"MemoryZero", with(3, "m=0,t=2,p=1")},
		{"MemoryHuge", with(3, "m=4294967295,t=2,p=1")},
		{"PassesZero", with(3, "m=19456,t=0,p=1")},
		{"PassesHuge", with(3, "m=19456,t=1000,p=1")},
		{"ThreadsZero", with(3, "m=19456,t=2,p=0")},
		{"ThreadsOverflow", with(3, "m=19456,t=2,p=256")},
		{"SaltNotBase64", with(4, "!!!!")},
		{"SaltPadded", with(4, parts[4]+"==")},
		{"KeyNotBase64", with(5, "%%%%")},
		{"KeyTooShort", with(5, base64.RawStdEncoding.EncodeToString(make([]byte, 15)))},
		{"KeyTooLong", with(5, base64.RawStdEncoding.EncodeToString(make([]byte, 65)))},
		{"ExtraField", good + "$x"},
		{"MissingField", strings.Join(parts[:5], "$")},
		{"LeadingSpace", " " + good},
		{"BcryptTruncated", bc[:len(bc)-10]},
		{"BcryptCostTooHigh", bc[:4] + "32" + bc[6:]},
		{"BcryptCostNotNumber", bc[:4] + "xx" + bc[6:]},
		{"BcryptMajorVersion3", "$3a$" + bc[4:]},
		{"BcryptOnlyPrefix", "$2a$"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ok, err := store.CheckSecret(tc.hash, "s")
			if ok {
				t.Errorf("CheckSecret(%q): got a match, want none", tc.hash)
			}
			if !errors.Is(err, store.ErrBadHash) {
				t.Errorf("CheckSecret(%q): got error %v, want ErrBadHash", tc.hash, err)
			}
		})
	}
}

// tooSlow reports whether checking a secret against hash would take long
// enough to stall the fuzzer: a legitimate but expensive cost (bcrypt cost
// up to 31, argon2id memory up to 4 GiB), not a parsing bug. The cost is
// read the way CheckSecret reads it.
func tooSlow(hash string) bool {
	if strings.HasPrefix(hash, "$2") && len(hash) >= 6 {
		rest := hash[3:]
		if hash[2] != '$' {
			rest = hash[4:]
		}
		if len(rest) >= 2 {
			cost, err := strconv.Atoi(rest[:2])
			return err == nil && cost > 6
		}
		return false
	}
	parts := strings.Split(hash, "$")
	if len(parts) < 4 {
		return false
	}
	var m, t, p uint64
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil {
		return false
	}
	return m > 64*1024 || t > 4 || m*t > 64*1024
}

// FuzzCheckSecret feeds arbitrary hash strings to CheckSecret: it never
// panics, never matches with an error, and every error is ErrBadHash. And
// an argon2id hash of the fuzzed secret (cheap parameters) matches it and
// not a different secret.
func FuzzCheckSecret(f *testing.F) {
	bc := bcryptHash(f, "s")
	for _, seed := range []string{
		hash(f, "s"),
		argon2idPHC("s", []byte("0123456789abcdef"), 64, 1, 1, 16),
		"$argon2id$v=19$m=8,t=1,p=1$$AAAAAAAAAAAAAAAAAAAAAA",
		"$argon2id$v=19$m=8,t=1,p=255$c2FsdA$AAAAAAAAAAAAAAAAAAAAAA",
		"$argon2id$v=19$m=+8,t=1,p=1$c2FsdA$AAAAAAAAAAAAAAAAAAAAAA",
		"$argon2id$v=19$m=8,t=1,p=1junk$c2FsdA$AAAAAAAAAAAAAAAAAAAAAA",
		bc,
		"$2b$" + bc[4:],
		"$2$" + bc[4:],
		bc[:20],
		"$2a$04$",
		"$argon2id$v=19$m=19456,t=2,p=1$$",
		"$$$$$",
		"",
	} {
		f.Add(seed, "s")
	}
	f.Fuzz(func(t *testing.T, h, secret string) {
		if tooSlow(h) {
			t.Skip("expensive parameters")
		}
		ok, err := store.CheckSecret(h, secret)
		if err != nil && ok {
			t.Errorf("CheckSecret(%q): got a match and error %v", h, err)
		}
		if err != nil && !errors.Is(err, store.ErrBadHash) {
			t.Errorf("CheckSecret(%q): got error %v, want ErrBadHash", h, err)
		}

		own := argon2idPHC(secret, []byte("fuzz-salt-16byte"), 64, 1, 1, 32)
		if ok, err := store.CheckSecret(own, secret); !ok || err != nil {
			t.Errorf("CheckSecret(hash of %q, same): got %v, %v, want true, nil", secret, ok, err)
		}
		if ok, err := store.CheckSecret(own, secret+"x"); ok || err != nil {
			t.Errorf("CheckSecret(hash of %q, other): got %v, %v, want false, nil", secret, ok, err)
		}
	})
}
