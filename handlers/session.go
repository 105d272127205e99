package handlers

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/gorilla/sessions"

	"github.com/pixieauth/pixie/store"
)

// Keys of the login cookie's values. The cookie holds no more than these:
// who is logged in, when and how is in the store's record.
const (
	keySessionID = "sid"  // the random session ID, base64url
	keyCSRF      = "csrf" // the forms' CSRF token
)

// loginSession is the decoded login cookie and the live record it names.
type loginSession struct {
	s *sessions.Session
	// rec is the session's record if it is live (found, not revoked, within
	// its lifetime and idle timeout), else nil.
	rec *store.Session
	// err is the error reading the record: the session is unknown, and
	// whoever needs it must answer server_error rather than guess.
	err error
	// pending is the record of a login that save stores before it writes
	// the cookie; replaces is the session ID the login ends.
	pending  *store.Session
	replaces string
}

// session reads the login cookie and looks up the record it names. A
// missing, expired or forged cookie, and a record that is missing,
// revoked, past its lifetime or idle for too long, give an empty session;
// a store failure is logged and kept in err.
func (s *Server) session(r *http.Request) loginSession {
	sess, err := s.cookies.New(r, s.cookie)
	if err != nil {
		// Tampered or sealed with an old key: start afresh.
		sess.Values = map[any]any{}
		sess.IsNew = true
	}
	l := loginSession{s: sess}
	id := l.id()
	if id == "" {
		return l
	}
	rec, err := s.sessions.Session(r.Context(), sessionKey(id))
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		s.p.Logger().ErrorContext(r.Context(), "read login session", "error", err)
		l.err = err
	case s.live(rec, s.p.Now()):
		l.rec = rec
	}
	return l
}

// live reports whether a session record still authenticates its user at
// time now: not revoked, within its absolute lifetime (the record's and
// the configured one, whichever ends first) and used within the idle
// timeout.
func (s *Server) live(rec *store.Session, now time.Time) bool {
	return !rec.Revoked &&
		now.Before(rec.ExpiresAt) &&
		now.Before(rec.CreatedAt.Add(s.lifetime)) &&
		now.Sub(rec.LastUsed) < s.idle
}

// id returns the session ID the cookie carries, or "".
func (l loginSession) id() string {
	id, _ := l.s.Values[keySessionID].(string)
	return id
}

// sessionKey is the store's key of a session ID: its SHA-256, so that the
// store never holds an ID a cookie could be made from.
func sessionKey(id string) string {
	var idBuf [64]byte // a session ID is 43 bytes: hashed from the stack
	sum := sha256.Sum256(append(idBuf[:0], id...))
	var key [43]byte // base64url of 32 bytes, unpadded
	base64.RawURLEncoding.Encode(key[:], sum[:])
	return string(key[:])
}

// subject returns the logged-in user, when they authenticated and how, or
// "" when there is no live session.
func (l loginSession) subject() (string, time.Time, []string) {
	if l.rec == nil {
		return "", time.Time{}, nil
	}
	return l.rec.Subject, l.rec.AuthTime, l.rec.AMR
}

// csrfToken returns the session's CSRF token, creating one if needed. The
// caller must save the session when it did.
func (l loginSession) csrfToken() (string, bool) {
	if t, ok := l.s.Values[keyCSRF].(string); ok && t != "" {
		return t, false
	}
	t := randomID()
	l.s.Values[keyCSRF] = t
	return t, true
}

// randomID returns 256 random bits, base64url-encoded.
func randomID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// checkCSRF reports whether the posted token matches the session's.
func (l loginSession) checkCSRF(posted string) bool {
	t, _ := l.s.Values[keyCSRF].(string)
	return t != "" && subtle.ConstantTimeCompare([]byte(t), []byte(posted)) == 1
}

// logIn replaces the session with a fresh login under a new random ID (so
// that no ID planted before the login survives it), with a new CSRF token.
// The record is stored, and the session the cookie named before ended, by
// [Server.save], which must follow.
func (l *loginSession) logIn(subject string, at time.Time, amr ...string) {
	if l.pending == nil {
		l.replaces = l.id()
	}
	id := randomID()
	l.s.Values = map[any]any{keySessionID: id}
	_, _ = l.csrfToken()
	// auth_time is in seconds (OIDC Core §2); keep it so, as max_age is
	// compared with it.
	l.pending = &store.Session{ID: sessionKey(id), Subject: subject, AuthTime: time.Unix(at.Unix(), 0), AMR: slices.Clone(amr)}
	l.rec = nil
}

// end clears the session and tells the browser to drop the cookie. The
// caller ends the record first (see [Server.endSession]).
func (l *loginSession) end() {
	l.s.Values = map[any]any{}
	l.s.Options.MaxAge = -1
	l.rec, l.pending = nil, nil
}

// save writes the cookie, storing first the record of a login logIn
// started and ending the session it replaces. The cookie expires with the
// session: its Max-Age is what is left of the session's absolute lifetime,
// so no save extends it.
func (s *Server) save(w http.ResponseWriter, r *http.Request, l loginSession) error {
	ctx := r.Context()
	now := s.p.Now()
	if l.pending != nil {
		if l.replaces != "" {
			if err := s.sessions.RevokeSession(ctx, sessionKey(l.replaces)); err != nil {
				return fmt.Errorf("end the replaced session: %w", err)
			}
		}
		rec := l.pending
		rec.CreatedAt, rec.LastUsed, rec.ExpiresAt = now, now, now.Add(s.lifetime)
		if err := s.sessions.CreateSession(ctx, rec); err != nil {
			return fmt.Errorf("create session: %w", err)
		}
		l.rec = rec
	}
	if l.s.Options.MaxAge >= 0 {
		l.s.Options.MaxAge = int(s.lifetime / time.Second) // a cookie with no session: its CSRF token
		if l.rec != nil {
			end := l.rec.ExpiresAt
			if byConfig := l.rec.CreatedAt.Add(s.lifetime); byConfig.Before(end) {
				end = byConfig
			}
			left := (end.Sub(now) + time.Second - 1) / time.Second
			l.s.Options.MaxAge = max(int(left), 1)
		}
	}
	return s.cookies.Save(r, w, l.s)
}

// setACR records the acr a host app's login reported (Login.ACR), after
// logIn, in the session's record. The acr of pixie's own login is not
// stored: the provider derives it from the amr.
func (l loginSession) setACR(acr string) {
	if l.pending != nil {
		l.pending.ACR = acr
	}
}

// acr returns the acr recorded by setACR, or "".
func (l loginSession) acr() string {
	if l.rec == nil {
		return ""
	}
	return l.rec.ACR
}

// touch records that the session was used at now, for the idle timeout:
// at most every s.touchEvery, so that a busy session costs few writes (its
// idle timeout may thus end up to that much early). A failure is logged:
// the session then times out sooner, never later.
func (s *Server) touch(ctx context.Context, l *loginSession) {
	now := s.p.Now()
	if l.rec == nil || now.Sub(l.rec.LastUsed) < s.touchEvery {
		return
	}
	if err := s.sessions.TouchSession(ctx, l.rec.ID, now); err != nil {
		s.p.Logger().ErrorContext(ctx, "record login session use", "error", err)
	}
}

// EndSessions ends every login session of the user (the subject of their
// tokens), on every replica sharing [Config.Sessions]: their next
// authorization request needs a new login. Call it when the user changes or
// resets their password, when their account is disabled, or for "sign out
// everywhere". It does not revoke tokens already issued: refresh tokens
// live on until they expire or are revoked (RFC 7009). It is safe for
// concurrent use.
func (s *Server) EndSessions(ctx context.Context, subject string) error {
	if subject == "" {
		return errors.New("handlers: end sessions: empty subject")
	}
	if err := s.sessions.RevokeSessions(ctx, subject); err != nil {
		return fmt.Errorf("handlers: end sessions: %w", err)
	}
	s.p.Logger().InfoContext(ctx, "ended the user's login sessions", "subject", subject)
	return nil
}
