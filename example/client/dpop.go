package main

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// dpopKey is the app's DPoP key (RFC 9449): a P-256 key pair made for this
// run. A real app keeps it in the Secure Enclave (iOS) or the Android
// Keystore, where the private key cannot be read out, and signs there.
type dpopKey struct {
	signer jose.Signer
	jkt    string // RFC 7638 SHA-256 thumbprint: what the server binds tokens to

	mu    sync.Mutex
	nonce string // the server's last DPoP-Nonce (§8), for the next proof
}

func newDPoPKey() (*dpopKey, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	// The public key goes in every proof's header (jwk), typ dpop+jwt.
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: priv},
		(&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt"))
	if err != nil {
		return nil, err
	}
	pub := jose.JSONWebKey{Key: &priv.PublicKey}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, err
	}
	return &dpopKey{signer: signer, jkt: base64.RawURLEncoding.EncodeToString(tp)}, nil
}

// proof returns a DPoP proof (§4.2) for a request: a fresh jti, the method
// and URL (without query and fragment), the time, the server's nonce if it
// gave one, and with an access token its hash (ath).
func (k *dpopKey) proof(method, rawURL, accessToken string) (string, error) {
	htu, _, _ := strings.Cut(rawURL, "?")
	htu, _, _ = strings.Cut(htu, "#")
	claims := map[string]any{"jti": randomString(), "htm": method, "htu": htu, "iat": time.Now().Unix()}
	k.mu.Lock()
	if k.nonce != "" {
		claims["nonce"] = k.nonce
	}
	k.mu.Unlock()
	if accessToken != "" {
		sum := sha256.Sum256([]byte(accessToken))
		claims["ath"] = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	jws, err := k.signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

// dpopTransport puts a proof in the DPoP header of the requests that need
// one: the token endpoint's (code exchange and refresh), and every request
// that sends an access token with the DPoP scheme (UserInfo, the API).
// When the server answers with a DPoP-Nonce it remembers it and, if the
// answer was the use_dpop_nonce error, sends the request once more. x/oauth2
// and go-oidc know nothing of DPoP: this is all a client library needs.
type dpopTransport struct {
	key      *dpopKey
	tokenURL string
	base     http.RoundTripper
}

func (t *dpopTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	var accessToken string
	if scheme, tok, ok := strings.Cut(req.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "DPoP") {
		accessToken = tok
	}
	if accessToken == "" && (req.Method != http.MethodPost || req.URL.String() != t.tokenURL) {
		return t.base.RoundTrip(req)
	}
	var body []byte
	if req.Body != nil {
		var err error
		if body, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
		req.Body.Close()
	}
	for try := 0; ; try++ {
		proof, err := t.key.proof(req.Method, req.URL.String(), accessToken)
		if err != nil {
			return nil, fmt.Errorf("dpop proof: %w", err)
		}
		r := req.Clone(req.Context())
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.Header.Set("DPoP", proof)
		resp, err := t.base.RoundTrip(r)
		if err != nil {
			return nil, err
		}
		nonce := resp.Header.Get("DPoP-Nonce")
		if nonce == "" {
			return resp, nil
		}
		t.key.mu.Lock()
		t.key.nonce = nonce
		t.key.mu.Unlock()
		if try > 0 || !askedForNonce(resp) {
			return resp, nil
		}
	}
}

// askedForNonce reports whether resp is the use_dpop_nonce error (RFC 9449
// §8: in the body at the token endpoint, in WWW-Authenticate at a resource),
// and if so drains it.
func askedForNonce(resp *http.Response) bool {
	if strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="use_dpop_nonce"`) {
		resp.Body.Close()
		return true
	}
	if resp.StatusCode != http.StatusBadRequest {
		return false
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	var e struct {
		Error string `json:"error"`
	}
	if err == nil && json.Unmarshal(b, &e) == nil && e.Error == "use_dpop_nonce" {
		return true
	}
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return false
}

// errNotBound is returned when -dpop was asked for and the server issued a
// bearer token anyway.
var errNotBound = errors.New("-dpop: the server did not bind the access token to the key (token_type is not DPoP)")
