package sqlstore

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
)

// ErrDecrypt reports a signing key that could not be decrypted: the store
// was opened with another [Config.KeySecret] than the one the key was
// stored with, or the stored row was altered. It is never a wrong key
// silently returned: AES-GCM authenticates what it decrypts.
var ErrDecrypt = errors.New("sqlstore: cannot decrypt signing key: wrong Config.KeySecret or altered row")

// keyEncryptionInfo is the HKDF info string: it separates this use of the
// secret from any other the application makes of it.
const keyEncryptionInfo = "pixie/sqlstore: signing key encryption v1"

// encVersion is the first byte of every encrypted key: the format
// version || nonce (12 bytes) || AES-256-GCM ciphertext and tag.
const encVersion = 1

// newKeyCipher derives the key-encryption key from secret with HKDF-SHA256
// and returns AES-256-GCM under it.
func newKeyCipher(secret []byte) (cipher.AEAD, error) {
	kek, err := hkdf.Key(sha256.New, secret, nil, keyEncryptionInfo, 32)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: derive key-encryption key: %w", err)
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: key-encryption cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("sqlstore: key-encryption cipher: %w", err)
	}
	return aead, nil
}

// keyAAD binds a ciphertext to the row it belongs to: a private key moved
// to another row, or relabelled with another algorithm, fails to decrypt.
func keyAAD(id, alg string) []byte {
	return []byte("pixie key\x00" + id + "\x00" + alg)
}

// sealKey encrypts a private key for the row (id, alg).
func (s *Store) sealKey(id, alg string, private []byte) ([]byte, error) {
	ns := s.aead.NonceSize()
	out := make([]byte, 1+ns, 1+ns+len(private)+s.aead.Overhead())
	out[0] = encVersion
	if _, err := rand.Read(out[1:]); err != nil {
		return nil, fmt.Errorf("sqlstore: encrypt key: %w", err)
	}
	return s.aead.Seal(out, out[1:], private, keyAAD(id, alg)), nil
}

// openKey decrypts what sealKey made for the row (id, alg).
func (s *Store) openKey(id, alg string, enc []byte) ([]byte, error) {
	ns := s.aead.NonceSize()
	if len(enc) < 1+ns+s.aead.Overhead() || enc[0] != encVersion {
		return nil, ErrDecrypt
	}
	private, err := s.aead.Open(nil, enc[1:1+ns], enc[1+ns:], keyAAD(id, alg))
	if err != nil {
		return nil, ErrDecrypt
	}
	return private, nil
}
