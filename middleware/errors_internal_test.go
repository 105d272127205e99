package middleware

import (
	"errors"
	"testing"
)

// TestReasons pins what issue 12 changed: the detailed reasons became
// unexported, but their messages, which RequireToken logs at Debug as
// "reason", are as before, and each wraps the one exported sentinel of
// its answer.
func TestReasons(t *testing.T) {
	exported := []error{ErrNoToken, ErrMalformedHeader, ErrInvalidToken, ErrExpired, ErrUnavailable}
	tests := []struct {
		reason error
		msg    string
		is     []error // the exported sentinels errors.Is finds
	}{
		{errMalformedToken, "middleware: malformed token", []error{ErrInvalidToken}},
		{errTokenType, "middleware: not an access token (typ)", []error{ErrInvalidToken}},
		{errAlgorithm, "middleware: signature algorithm not allowed", []error{ErrInvalidToken}},
		{errUnknownKey, "middleware: unknown signing key", []error{ErrInvalidToken}},
		{errKeyMismatch, "middleware: key does not match the algorithm", []error{ErrInvalidToken}},
		{errSignature, "middleware: invalid signature", []error{ErrInvalidToken}},
		{errMissingClaim, "middleware: required claim missing", []error{ErrInvalidToken}},
		{errIssuer, "middleware: wrong issuer", []error{ErrInvalidToken}},
		{errAudience, "middleware: wrong audience", []error{ErrInvalidToken}},
		{errNotYetValid, "middleware: token not yet valid", []error{ErrInvalidToken}},
		{errIssuedInFuture, "middleware: token issued in the future", []error{ErrInvalidToken}},
		{errWrongTokenType, "middleware: not an access token (token_type)", []error{ErrInvalidToken}},
		{errInactive, "middleware: token inactive", []error{ErrInvalidToken}},
		{errExpired, "middleware: token expired", []error{ErrInvalidToken, ErrExpired}},
		{ErrNoToken, "middleware: no bearer token", []error{ErrNoToken}},
		{ErrMalformedHeader, "middleware: malformed Authorization header", []error{ErrMalformedHeader}},
		{ErrUnavailable, "middleware: token check unavailable", []error{ErrUnavailable}},
		{errInsufficientScope, "middleware: insufficient scope", nil},
		{errDPoP, "middleware: DPoP proof or binding refused", nil},
	}
	for _, tc := range tests {
		if got := (&Error{reason: tc.reason}).reasonText(); got != tc.msg {
			t.Errorf("reason text: got %q, want %q", got, tc.msg)
		}
		for _, s := range exported {
			want := false
			for _, w := range tc.is {
				want = want || w == s
			}
			if got := errors.Is(&Error{reason: tc.reason}, s); got != want {
				t.Errorf("errors.Is(%q, %q) = %v, want %v", tc.msg, s, got, want)
			}
		}
	}
	// The message of a refusal is unchanged: code and description.
	if got, want := refuse(errAudience, "The access token is not meant for this resource server (aud).").Error(),
		"middleware: invalid_token: The access token is not meant for this resource server (aud)."; got != want {
		t.Errorf("Error(): got %q, want %q", got, want)
	}
}
