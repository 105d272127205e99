package handlers

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/pixieauth/pixie/internal/telemetry"
	"github.com/pixieauth/pixie/store"
)

// maxCredentialLen bounds what is hashed, so a huge password costs nothing.
const maxCredentialLen = 1024

// loginPage shows the login form. Its query is the pending authorization
// request, which the form carries back.
func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	token, ok := s.formToken(w, r)
	if !ok {
		return
	}
	request := r.URL.RawQuery
	hint := queryValue(request, "login_hint")
	if queryValue(request, "request_uri") != "" {
		// A pushed request (RFC 9126): its login_hint is in what was
		// pushed, not in the query.
		if areq, err := s.parseRequest(r.Context(), request); err == nil {
			hint = areq.LoginHint
		}
	}
	s.showLogin(w, r, http.StatusOK, LoginPage{
		ClientName: s.clientName(r, request),
		Username:   hint,
		CSRFToken:  token,
		Request:    request,
	})
}

// loginSubmit checks the posted credentials. On success it starts a fresh
// session and resumes the authorization request; on failure it shows the
// form again with the same message whether the user exists or not.
func (s *Server) loginSubmit(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	sess, ok := s.postedForm(w, r)
	if !ok {
		return
	}
	request := r.PostForm.Get("request")
	username, password := r.PostForm.Get("username"), r.PostForm.Get("password")
	page := LoginPage{ClientName: s.clientName(r, request), Username: username, Request: request}
	if username == "" || password == "" || len(username) > maxCredentialLen || len(password) > maxCredentialLen {
		page.Error = "Enter your username and password."
		page.CSRFToken, _ = sess.csrfToken()
		s.showLogin(w, r, http.StatusOK, page)
		return
	}
	// The throttle decides before the password is checked, and only a
	// wrong password counts: a throttled attempt confirms no guess, and no
	// number of right ones is ever refused as failures.
	att := s.logins.attempt(strings.ToLower(username), s.clientIP(r))
	wait, release, err := s.logins.admit(ctx, att)
	if err != nil {
		if ctx.Err() != nil {
			return // the client went away while waiting its turn
		}
		s.loginUnavailable(w, r, "read login throttle", err)
		return
	}
	defer release()
	if wait > 0 {
		secs := retryAfter(w, wait)
		s.p.Logger().WarnContext(ctx, "login throttled", "retry_after", secs)
		s.loginAttempt(ctx, telemetry.LoginThrottled, "", request)
		page.Error = "Too many failed attempts. Try again in " + waitText(secs) + "."
		page.CSRFToken, _ = sess.csrfToken()
		s.showLogin(w, r, http.StatusTooManyRequests, page)
		return
	}
	sub, err := s.p.Authenticate(ctx, username, password)
	if err != nil {
		s.loginRefused(w, r, sess, att, page, err)
		return
	}
	s.loggedIn(w, r, sess, att, sub, request)
}

// loginUnavailable answers a login that a store failure stopped, telling
// the user to try later rather than that the credentials were wrong.
func (s *Server) loginUnavailable(w http.ResponseWriter, r *http.Request, op string, err error) {
	s.p.Logger().ErrorContext(r.Context(), op, "error", err)
	s.renderError(w, r, failureStatus(err), "server_error", "Signing in is not possible right now. Try again later.")
}

// loginRefused answers credentials that Authenticate did not accept: a
// wrong password counts against the throttle and shows the form again,
// any other error is the store's.
func (s *Server) loginRefused(w http.ResponseWriter, r *http.Request, sess loginSession, att *attempt, page LoginPage, err error) {
	ctx := r.Context()
	if !errors.Is(err, store.ErrInvalidCredentials) {
		s.loginUnavailable(w, r, "authenticate user", err)
		return
	}
	if err := s.logins.failed(ctx, att); err != nil {
		s.loginUnavailable(w, r, "record login failure", err)
		return
	}
	s.p.Logger().InfoContext(ctx, "login failed")
	s.loginAttempt(ctx, telemetry.LoginWrongCredentials, "", page.Request)
	page.Error = "The username or password is incorrect."
	page.CSRFToken, _ = sess.csrfToken()
	s.showLogin(w, r, http.StatusOK, page)
}

// loggedIn finishes a login whose credentials were right: the session
// records who logged in and the user goes back to the request.
func (s *Server) loggedIn(w http.ResponseWriter, r *http.Request, sess loginSession, att *attempt, sub, request string) {
	ctx := r.Context()
	if err := s.logins.succeeded(ctx, att); err != nil {
		s.p.Logger().ErrorContext(ctx, "record login success in throttle", "error", err)
	}
	sess.logIn(sub, s.p.Now(), "pwd")
	if err := s.save(w, r, sess); err != nil {
		s.p.Logger().ErrorContext(ctx, "save login session", "error", err)
		s.renderError(w, r, http.StatusInternalServerError, "server_error", "")
		return
	}
	s.p.Logger().InfoContext(ctx, "user logged in", "subject", sub)
	s.loginAttempt(ctx, telemetry.LoginSuccess, sub, request)
	to, ok := s.resumeURL(request, "login")
	if !ok {
		to = s.link("/")
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

func (s *Server) showLogin(w http.ResponseWriter, r *http.Request, status int, page LoginPage) {
	page.Nonce = newNonce()
	page.Action = s.link(PathLogin)
	s.render(w, r, status, "login.html", page.Nonce, page)
}

// clientName returns the display name of the client of a pending request,
// or "" when there is none.
func (s *Server) clientName(r *http.Request, request string) string {
	id := queryValue(request, "client_id")
	if id == "" {
		return ""
	}
	c, err := s.p.Client(r.Context(), id)
	if err != nil {
		return ""
	}
	return displayName(c)
}

func queryValue(query, key string) string {
	q, err := url.ParseQuery(query)
	if err != nil {
		return ""
	}
	return q.Get(key)
}

// formToken returns the CSRF token a form must post back, saving the
// session that holds it if the token is new. A session that already has
// one is not saved again: a page view changes nothing, and so extends
// nothing. On failure it has answered the request.
func (s *Server) formToken(w http.ResponseWriter, r *http.Request) (string, bool) {
	sess := s.session(r)
	token, created := sess.csrfToken()
	if !created {
		return token, true
	}
	if err := s.save(w, r, sess); err != nil {
		s.p.Logger().ErrorContext(r.Context(), "save login session", "error", err)
		s.renderError(w, r, http.StatusInternalServerError, "server_error", "")
		return "", false
	}
	return token, true
}

// postedForm parses a posted form (MaxRequestBytes at most) and checks its CSRF
// token against the session's. On failure it has answered the request.
func (s *Server) postedForm(w http.ResponseWriter, r *http.Request) (loginSession, bool) {
	if err := r.ParseForm(); err != nil {
		s.renderError(w, r, http.StatusBadRequest, "invalid_request", "The form could not be read.")
		return loginSession{}, false
	}
	sess := s.session(r)
	if !sess.checkCSRF(r.PostForm.Get("csrf_token")) {
		s.renderError(w, r, http.StatusForbidden, "invalid_request", "The form expired or did not come from this site. Go back and try again.")
		return loginSession{}, false
	}
	return sess, true
}
