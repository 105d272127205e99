package provider

import (
	"bytes"
	"encoding/json"
	"slices"

	"github.com/ory/fosite"

	"github.com/pixieauth/pixie/store"
)

// Authentication context class references (acr, OIDC Core §2) pixie puts in
// ID tokens.
const (
	// ACRPassword is the acr of a login by password alone: pixie's own
	// login form, or a host app's login that reports AMR ["pwd"] and no
	// ACR of its own.
	ACRPassword = "urn:pixie:acr:pwd"
	// ACRUnspecified is the acr of a login whose strength pixie does not
	// know: a host app's login that reports neither an ACR nor AMR ["pwd"].
	// "0" is the value OIDC Core §2 defines for an authentication that does
	// not meet ISO/IEC 29115 level 1.
	ACRUnspecified = "0"
)

// maxClaimsParam bounds the claims request parameter, in bytes. A request
// for every standard claim, each essential, for both the ID token and
// userinfo, takes well under 2 KiB.
const maxClaimsParam = 4096

// standardClaims lists the user claims pixie releases (OIDC Core §5.1), in
// the order they are released, each with the scope that releases it (§5.4).
// The claims parameter may ask for any of them individually.
var standardClaims = [...]struct{ name, scope string }{
	{"name", "profile"},
	{"given_name", "profile"},
	{"family_name", "profile"},
	{"preferred_username", "profile"},
	{"picture", "profile"},
	{"locale", "profile"},
	{"email", "email"},
	{"email_verified", "email"},
	{"address", "address"},
	{"phone_number", "phone"},
	{"phone_number_verified", "phone"},
}

// claimScope returns the scope that releases a standard claim, or "".
func claimScope(name string) string {
	for _, c := range standardClaims {
		if c.name == name {
			return c.scope
		}
	}
	return ""
}

// claimsRequest is the parsed claims request parameter (OIDC Core §5.5):
// the individual claims asked for in the ID token and at userinfo.
type claimsRequest struct {
	IDToken  map[string]claimRequest
	UserInfo map[string]claimRequest
}

// claimRequest is what §5.5.1 lets a client say about one claim: whether it
// is essential, and the value or values it must have.
type claimRequest struct {
	Essential bool
	Values    []string // value and values, when they are strings
}

// parseClaimsParam parses and validates the claims parameter. Members other
// than id_token and userinfo are ignored, as §5.5 requires of members not
// understood; within them every claim must be null or an object whose
// essential is a boolean and whose values is an array. Values that are not
// strings are kept only as "some value was given" (pixie checks values of
// acr and sub only, which are strings).
func parseClaimsParam(raw string) (*claimsRequest, error) {
	if raw == "" {
		return nil, nil
	}
	if len(raw) > maxClaimsParam {
		return nil, fosite.ErrInvalidRequest.WithHint("The claims parameter is too long.")
	}
	bad := fosite.ErrInvalidRequest.WithHint("The claims parameter is not a valid JSON claims request (OIDC Core §5.5).")
	var top map[string]json.RawMessage
	if err := json.Unmarshal([]byte(raw), &top); err != nil || top == nil {
		return nil, bad
	}
	cr := &claimsRequest{}
	for member, dst := range map[string]*map[string]claimRequest{"id_token": &cr.IDToken, "userinfo": &cr.UserInfo} {
		v, ok := top[member]
		if !ok || isNull(v) {
			continue
		}
		var claims map[string]json.RawMessage
		if err := json.Unmarshal(v, &claims); err != nil || claims == nil {
			return nil, bad
		}
		out := make(map[string]claimRequest, len(claims))
		for name, spec := range claims {
			req, ok := parseClaimSpec(spec)
			if !ok {
				return nil, bad
			}
			out[name] = req
		}
		*dst = out
	}
	return cr, nil
}

// parseClaimSpec parses the value of one requested claim: null, or an
// object with the optional members essential, value and values.
func parseClaimSpec(spec json.RawMessage) (claimRequest, bool) {
	var req claimRequest
	if isNull(spec) {
		return req, true
	}
	var obj struct {
		Essential json.RawMessage `json:"essential"`
		Value     json.RawMessage `json:"value"`
		Values    json.RawMessage `json:"values"`
	}
	if err := json.Unmarshal(spec, &obj); err != nil || bytes.TrimSpace(spec)[0] != '{' {
		return req, false
	}
	if obj.Essential != nil && !isNull(obj.Essential) {
		if err := json.Unmarshal(obj.Essential, &req.Essential); err != nil {
			return req, false
		}
	}
	if obj.Value != nil && !isNull(obj.Value) {
		var s string
		if json.Unmarshal(obj.Value, &s) == nil {
			req.Values = append(req.Values, s)
		} else {
			req.Values = append(req.Values, "") // a value, not a string: matches no string
		}
	}
	if obj.Values != nil && !isNull(obj.Values) {
		var vs []json.RawMessage
		if err := json.Unmarshal(obj.Values, &vs); err != nil {
			return req, false
		}
		for _, v := range vs {
			var s string
			if json.Unmarshal(v, &s) != nil {
				s = ""
			}
			req.Values = append(req.Values, s)
		}
	}
	return req, true
}

func isNull(v json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(v), []byte("null")) }

// releasable returns the standard claims of req that the client may be
// given: those whose scope it is registered for, sorted. Claims pixie does
// not have are simply not released (§5.5.1: not an error, even when
// essential).
func releasable(req map[string]claimRequest, c *store.Client) []string {
	var out []string
	for name := range req {
		if sc := claimScope(name); sc != "" && slices.Contains(c.Scopes, sc) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

// userClaims returns the standard claims (OIDC Core §5.1) the granted
// scopes release (§5.4), plus those named individually (the claims
// parameter, §5.5), when the user has them. sub is always present and set
// elsewhere.
func userClaims(u *store.User, scopes fosite.Arguments, named []string) map[string]any {
	c := map[string]any{}
	for _, sc := range standardClaims {
		if !scopes.Has(sc.scope) && !slices.Contains(named, sc.name) {
			continue
		}
		if v, ok := claimValue(u, sc.name); ok {
			c[sc.name] = v
		}
	}
	return c
}

// claimValue returns a user's claim, and whether the user has it.
func claimValue(u *store.User, name string) (any, bool) {
	str := func(s string) (any, bool) { return s, s != "" }
	switch name {
	case "name":
		return str(u.Name)
	case "given_name":
		return str(u.GivenName)
	case "family_name":
		return str(u.FamilyName)
	case "preferred_username":
		return str(u.PreferredUsername)
	case "picture":
		return str(u.Picture)
	case "locale":
		return str(u.Locale)
	case "email":
		return str(u.Email)
	case "email_verified":
		return u.EmailVerified, u.Email != ""
	case "address":
		return addressClaim(u.Address)
	case "phone_number":
		return str(u.PhoneNumber)
	case "phone_number_verified":
		return u.PhoneNumberVerified, u.PhoneNumber != ""
	}
	return nil, false
}

// addressClaim returns the address claim, a JSON object of the fields set
// (§5.1.1).
func addressClaim(a store.Address) (any, bool) {
	m := map[string]any{}
	for k, v := range map[string]string{
		"formatted":      a.Formatted,
		"street_address": a.StreetAddress,
		"locality":       a.Locality,
		"region":         a.Region,
		"postal_code":    a.PostalCode,
		"country":        a.Country,
	} {
		if v != "" {
			m[k] = v
		}
	}
	return m, len(m) > 0
}

// loginACR returns the acr of a login: the one the login gives, or one
// derived from its amr.
func loginACR(l Login) string {
	switch {
	case l.ACR != "":
		return l.ACR
	case slices.Equal(l.AMR, []string{"pwd"}):
		return ACRPassword
	default:
		return ACRUnspecified
	}
}

// acrValuesSupported returns the acr values pixie's ID tokens may carry,
// for acr_values_supported (OIDC Discovery §3): ACRPassword,
// ACRUnspecified and Config.ACRValues.
func (p *Provider) acrValuesSupported() []string {
	return append([]string{ACRPassword, ACRUnspecified}, p.cfg.ACRValues...)
}

// scopesSupported returns the OpenID Connect scopes pixie serves, for
// scopes_supported (OIDC Discovery §3); API scopes are not listed.
func scopesSupported() []string {
	return slices.DeleteFunc(slices.Clone(oidcScopes), func(s string) bool { return s == "offline" })
}

// claimsSupported returns the claims pixie's ID tokens and userinfo
// responses may carry, for claims_supported (OIDC Discovery §3).
func claimsSupported() []string {
	out := []string{"sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "at_hash"}
	for _, c := range standardClaims {
		out = append(out, c.name)
	}
	return out
}
