package provider

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"

	"github.com/ory/fosite"

	"github.com/pixieauth/pixie/store"
)

// Grant types a client may be registered for.
const (
	grantAuthorizationCode = "authorization_code"
	grantRefreshToken      = "refresh_token"
)

// ValidateClient checks a client registration against pixie's rules, the ones
// [Provider] enforces on every lookup:
//   - redirect URIs absolute and without a fragment (a client with none, such
//     as a resource server that only introspects, cannot use /authorize);
//   - https redirect URIs for every client; http only for a native client on
//     a loopback IP literal (http://127.0.0.1/… or http://[::1]/…, RFC 8252 §7.3);
//   - custom schemes only for native clients, and in reverse-domain form
//     (com.example.app:/…, RFC 8252 §7.1);
//   - grant types among authorization_code and refresh_token;
//   - IDTokenAlg empty, RS256 or ES256.
func ValidateClient(c *store.Client) error {
	if c.ID == "" {
		return errors.New("provider: client has no ID")
	}
	for _, raw := range c.RedirectURIs {
		if err := validateRedirectURI(raw, c.Native); err != nil {
			return fmt.Errorf("provider: client %q: %w", c.ID, err)
		}
	}
	for _, raw := range c.PostLogoutRedirectURIs {
		if err := validateRedirectURI(raw, c.Native); err != nil {
			return fmt.Errorf("provider: client %q: post-logout %w", c.ID, err)
		}
	}
	for _, g := range c.GrantTypes {
		if g != grantAuthorizationCode && g != grantRefreshToken {
			return fmt.Errorf("provider: client %q: unsupported grant type %q", c.ID, g)
		}
	}
	switch c.IDTokenAlg {
	case "", RS256, ES256:
	default:
		return fmt.Errorf("provider: client %q: IDTokenAlg %q is not RS256 or ES256", c.ID, c.IDTokenAlg)
	}
	return nil
}

func validateRedirectURI(raw string, native bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("redirect URI %q: %w", raw, err)
	}
	if u.Scheme == "" || u.Fragment != "" || strings.Contains(raw, "#") {
		return fmt.Errorf("redirect URI %q must be absolute and have no fragment", raw)
	}
	if u.User != nil {
		return fmt.Errorf("redirect URI %q must not have user information", raw)
	}
	switch u.Scheme {
	case "https":
		if u.Hostname() == "" {
			return fmt.Errorf("redirect URI %q has no host", raw)
		}
	case "http":
		ip := net.ParseIP(u.Hostname())
		if !native || ip == nil || !ip.IsLoopback() {
			return fmt.Errorf("redirect URI %q: http is allowed only for native clients on a loopback IP address", raw)
		}
	default:
		if !native {
			return fmt.Errorf("redirect URI %q: custom schemes are allowed only for native clients", raw)
		}
		if !strings.Contains(u.Scheme, ".") {
			return fmt.Errorf("redirect URI %q: a custom scheme must be a reverse domain name such as com.example.app", raw)
		}
	}
	return nil
}

// fositeClient presents a store.Client to fosite. issuer is, besides the
// client's APIs, what it may get tokens for (userinfo): see GetAudience.
type fositeClient struct {
	c      *store.Client
	issuer string
}

func (p *Provider) fositeClient(c *store.Client) fositeClient {
	return fositeClient{c, p.cfg.Issuer}
}

var (
	_ fosite.Client             = fositeClient{}
	_ fosite.ResponseModeClient = fositeClient{}
)

func (f fositeClient) GetID() string                      { return f.c.ID }
func (f fositeClient) GetHashedSecret() []byte            { return []byte(f.c.SecretHash) }
func (f fositeClient) GetRedirectURIs() []string          { return f.c.RedirectURIs }
func (f fositeClient) GetResponseTypes() fosite.Arguments { return fosite.Arguments{"code"} }
func (f fositeClient) GetScopes() fosite.Arguments        { return f.c.Scopes }
func (f fositeClient) IsPublic() bool                     { return f.c.Public() }
func (f fositeClient) GetAudience() fosite.Arguments {
	// Made on each call, a list of the caller's own: fosite asks for it
	// once or twice a flow, for many more clients it is handed.
	return append(slices.Clone(f.c.APIs), f.issuer)
}
func (f fositeClient) GetGrantTypes() fosite.Arguments {
	if len(f.c.GrantTypes) == 0 {
		return fosite.Arguments{grantAuthorizationCode, grantRefreshToken}
	}
	return f.c.GrantTypes
}

// GetResponseModes allows response_mode=query, stated or implied: codes are
// delivered in the query (RFC 6749 §4.1.2) and nowhere else.
func (f fositeClient) GetResponseModes() []fosite.ResponseModeType {
	return []fosite.ResponseModeType{fosite.ResponseModeDefault, fosite.ResponseModeQuery}
}

// secretHasher checks client secrets against argon2id or bcrypt hashes made
// with store.HashSecret.
type secretHasher struct{}

func (secretHasher) Compare(_ context.Context, hash, secret []byte) error {
	ok, err := store.CheckSecret(string(hash), string(secret))
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("provider: client secret mismatch")
	}
	return nil
}

func (secretHasher) Hash(_ context.Context, secret []byte) ([]byte, error) {
	h, err := store.HashSecret(string(secret))
	return []byte(h), err
}

// allowsGrant reports whether the client may use the grant type.
func allowsGrant(c *store.Client, grant string) bool {
	return slices.Contains(fositeClient{c: c}.GetGrantTypes(), grant)
}

// redirectURIRegistered reports whether requested is one of the client's
// registered redirect URIs (RFC 6749 §3.1.2.3, RFC 9700 §4.1.1: simple
// string comparison). The one exception is RFC 8252 §7.3: for a native
// client, a registered http URI on a loopback IP literal matches the same
// URI with any port from 1 to 65535, written in decimal without a leading
// zero. Everything else (scheme, its case, userinfo, host, path, query)
// must be the registered string exactly. fosite's own matching is looser
// (it compares parsed hosts and ignores the scheme and userinfo), so this
// runs first.
func redirectURIRegistered(c *store.Client, requested string) bool {
	if slices.Contains(c.RedirectURIs, requested) {
		return true
	}
	if !c.Native {
		return false
	}
	for _, reg := range c.RedirectURIs {
		host, rest, ok := loopbackParts(reg)
		if !ok {
			continue
		}
		tail, ok := strings.CutPrefix(requested, "http://"+host)
		if !ok {
			continue
		}
		if tail == rest {
			return true // without a port
		}
		if tail == "" || tail[0] != ':' {
			continue
		}
		i := 1
		for i < len(tail) && tail[i] >= '0' && tail[i] <= '9' {
			i++
		}
		if validPort(tail[1:i]) && tail[i:] == rest {
			return true
		}
	}
	return false
}

// loopbackParts splits a registered loopback redirect URI,
// http://HOST[:PORT]REST with HOST a loopback IP literal (brackets kept for
// IPv6), into HOST and REST (the path, query, everything after the port).
func loopbackParts(reg string) (host, rest string, ok bool) {
	after, ok := strings.CutPrefix(reg, "http://")
	if !ok {
		return "", "", false
	}
	end := strings.IndexAny(after, "/?#")
	if end < 0 {
		end = len(after)
	}
	authority, rest := after[:end], after[end:]
	if strings.Contains(authority, "@") {
		return "", "", false
	}
	h := authority
	if strings.HasPrefix(authority, "[") {
		i := strings.IndexByte(authority, ']')
		if i < 0 {
			return "", "", false
		}
		h = authority[:i+1]
	} else if i := strings.IndexByte(authority, ':'); i >= 0 {
		h = authority[:i]
	}
	ip := net.ParseIP(strings.Trim(h, "[]"))
	if ip == nil || !ip.IsLoopback() {
		return "", "", false
	}
	return h, rest, true
}

// validPort reports whether s is a TCP port from 1 to 65535 in decimal,
// without a leading zero.
func validPort(s string) bool {
	if s == "" || len(s) > 5 || s[0] == '0' {
		return false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n <= 65535
}
