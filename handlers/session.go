package handlers

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/sessions"
)

// Keys of the login session's values.
const (
	keySubject  = "sub"
	keyAuthTime = "auth_time" // Unix seconds
	keyAMR      = "amr"       // space-separated
	keyCSRF     = "csrf"
	keyACR      = "acr" // the acr a host app's login reported; absent for pixie's own
)

// loginSession is the decoded login cookie.
type loginSession struct {
	s *sessions.Session
}

// session reads the login cookie. A missing, expired or forged cookie gives
// an empty session.
func (s *Server) session(r *http.Request) loginSession {
	sess, err := s.cookies.New(r, s.cookie)
	if err != nil {
		// Tampered or sealed with an old key: start afresh.
		sess.Values = map[any]any{}
		sess.IsNew = true
	}
	return loginSession{sess}
}

// subject returns the logged-in user and when they authenticated, or "".
func (l loginSession) subject() (string, time.Time, []string) {
	sub, _ := l.s.Values[keySubject].(string)
	at, _ := l.s.Values[keyAuthTime].(int64)
	amr, _ := l.s.Values[keyAMR].(string)
	if sub == "" || at == 0 {
		return "", time.Time{}, nil
	}
	return sub, time.Unix(at, 0), strings.Fields(amr)
}

// csrfToken returns the session's CSRF token, creating one if needed. The
// caller must save the session when it did.
func (l loginSession) csrfToken() (string, bool) {
	if t, ok := l.s.Values[keyCSRF].(string); ok && t != "" {
		return t, false
	}
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	t := base64.RawURLEncoding.EncodeToString(b)
	l.s.Values[keyCSRF] = t
	return t, true
}

// checkCSRF reports whether the posted token matches the session's.
func (l loginSession) checkCSRF(posted string) bool {
	t, _ := l.s.Values[keyCSRF].(string)
	return t != "" && subtle.ConstantTimeCompare([]byte(t), []byte(posted)) == 1
}

// logIn replaces the session's contents with a fresh login: nothing of the
// session before it survives, including the CSRF token.
func (l loginSession) logIn(subject string, at time.Time, amr ...string) {
	l.s.Values = map[any]any{
		keySubject:  subject,
		keyAuthTime: at.Unix(),
		keyAMR:      strings.Join(amr, " "),
	}
	_, _ = l.csrfToken()
}

// end clears the session and tells the browser to drop the cookie.
func (l loginSession) end() {
	l.s.Values = map[any]any{}
	l.s.Options.MaxAge = -1
}

// save writes the cookie.
func (s *Server) save(w http.ResponseWriter, r *http.Request, l loginSession) error {
	return s.cookies.Save(r, w, l.s)
}

// setACR records the acr a host app's login reported (Login.ACR), after
// logIn. The acr of pixie's own login is not stored: the provider derives it
// from the amr.
func (l loginSession) setACR(acr string) {
	if acr != "" {
		l.s.Values[keyACR] = acr
	}
}

// acr returns the acr recorded by setACR, or "".
func (l loginSession) acr() string {
	acr, _ := l.s.Values[keyACR].(string)
	return acr
}
