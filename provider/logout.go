package provider

import (
	"context"
	"errors"
	"fmt"

	"github.com/ory/fosite/token/jwt"

	"github.com/pixieauth/pixie/internal/engine"
)

// verifyIDTokenHint checks an ID token this provider issued, as the
// id_token_hint of a logout request: its signature (by any of the
// provider's keys, rotated ones included) and its issuer. A hint longer
// than engine.MaxIDTokenHintLen is refused unread. An expired token is
// accepted, as the specification allows: it only names who to log out.
func (p *Provider) verifyIDTokenHint(ctx context.Context, raw string) (*engine.IDTokenHint, error) {
	if len(raw) > engine.MaxIDTokenHintLen {
		// Not parsed at all: splitting a huge token costs more than it
		// could ever be worth.
		return nil, fmt.Errorf("provider: id_token_hint longer than %d bytes", engine.MaxIDTokenHintLen)
	}
	tok, err := newJWTSigner(p.keys, p.cfg.IDTokenAlg).Decode(ctx, raw)
	var ve *jwt.ValidationError
	if err != nil && !(errors.As(err, &ve) && ve.Errors == jwt.ValidationErrorExpired) {
		return nil, fmt.Errorf("provider: id_token_hint: %w", err)
	}
	if tok == nil || tok.Claims == nil {
		return nil, errors.New("provider: id_token_hint has no claims")
	}
	if iss, _ := tok.Claims["iss"].(string); iss != p.cfg.Issuer {
		return nil, errors.New("provider: id_token_hint was not issued here")
	}
	sub, _ := tok.Claims["sub"].(string)
	if sub == "" {
		return nil, errors.New("provider: id_token_hint has no subject")
	}
	h := &engine.IDTokenHint{Subject: sub}
	switch aud := tok.Claims["aud"].(type) {
	case string:
		h.Audience = []string{aud}
	case []any:
		for _, a := range aud {
			if s, ok := a.(string); ok {
				h.Audience = append(h.Audience, s)
			}
		}
	}
	return h, nil
}
