package handlers

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/pixieauth/pixie/internal/engine"
	"github.com/pixieauth/pixie/provider"
)

// Pending is an authorization request waiting for the user to log in, as
// the host app's own login sees it when Config.LoginURL sends users there
// instead of to pixie's login page. Get it with [Server.PendingLogin]; end it
// with [Pending.Complete] once the app knows who the user is, or with
// [Pending.Deny].
type Pending struct {
	ClientID   string   // the app asking
	ClientName string   // its display name
	Scopes     []string // the scopes it asks for, also through the claims parameter
	LoginHint  string   // login_hint, for pre-filling a username
	// Prompt holds the prompt values, such as login: with login, the app
	// must authenticate the user anew, not reuse its own session.
	Prompt []string
	// ACRValues are the authentication context classes (acr) the client
	// asks for, in order of preference. With ACREssential, a login whose
	// Login.ACR is not among them fails with
	// unmet_authentication_requirements (OIDC Core §5.5.1.1): step the user
	// up, or Deny.
	ACRValues    []string
	ACREssential bool

	// MaxAge is the request's max_age, negative when absent: a login
	// older than this (Login.AuthTime) does not count, and the user must
	// authenticate again (OIDC Core §3.1.2.1).
	MaxAge  time.Duration
	request string // the authorization request's parameters
	areq    *engine.AuthorizeRequest
	s       *Server
}

// ErrNoPending is returned by [Server.PendingLogin] when the request carries
// no authorization request.
var ErrNoPending = errors.New("handlers: no pending authorization request")

// PendingLogin returns the authorization request waiting on r, a request to
// the host app's login page: the request's parameters travel in the URL's
// query (pixie redirects there with them) or, for a form that posts
// elsewhere, in a field named pixie_request holding [Pending.Request] (an
// application/x-www-form-urlencoded body, as HTML forms post by default;
// a multipart body is not read, and a body is read up to MaxRequestBytes). It
// validates the request again, so a tampered one fails here: the error then
// says what is wrong with it (the client's mistake, or pixie's server_error),
// and is ErrNoPending when there is no request at all.
func (s *Server) PendingLogin(r *http.Request) (*Pending, error) {
	if r.Body != nil && r.PostForm == nil {
		// Only a urlencoded body is read (ParseForm skips any other), and
		// no more of it than any pixie endpoint reads.
		r.Body = http.MaxBytesReader(nil, r.Body, MaxRequestBytes)
	}
	if err := r.ParseForm(); err != nil || len(r.URL.RawQuery) > MaxRequestBytes {
		return nil, ErrNoPending
	}
	request := r.Form.Get("pixie_request")
	if request == "" {
		request = r.URL.RawQuery
	}
	q, err := url.ParseQuery(request)
	if err != nil || q.Get("client_id") == "" {
		return nil, ErrNoPending
	}
	areq, err := s.parseRequest(r.Context(), request)
	if err != nil {
		return nil, err
	}
	return &Pending{
		ClientID:   areq.Client.ID,
		ClientName: displayName(areq.Client),
		Scopes:     areq.Scopes,
		LoginHint:  areq.LoginHint,
		Prompt:     areq.Prompt,
		MaxAge:     areq.MaxAge,
		request:    q.Encode(),
		areq:       areq,
		s:          s,

		ACRValues:    areq.ACRValues,
		ACREssential: areq.ACREssential,
	}, nil
}

// parseRequest validates an authorization request given as its query.
func (s *Server) parseRequest(ctx context.Context, request string) (*engine.AuthorizeRequest, error) {
	r, err := http.NewRequestWithContext(ctx, http.MethodGet, s.link(PathAuthorize)+"?"+request, http.NoBody)
	if err != nil {
		return nil, ErrNoPending
	}
	return s.p.ParseAuthorizeRequest(ctx, r)
}

// Request returns the pending request's parameters, for a form field named
// pixie_request when the login form posts to another URL than it was
// served at.
func (p *Pending) Request() string { return p.request }

// Complete logs the user in to pixie (a fresh login session: nothing of the
// session before it survives) and sends the browser back to the
// authorization endpoint, which issues the code. Call it only once the app
// has authenticated the user. login says who logged in: Subject (required:
// the sub of the tokens), AuthTime (zero means now), AMR (RFC 8176, e.g.
// ["pwd", "otp"]) and ACR (the acr of the ID token: one of
// provider.Config.ACRValues; empty means provider.ACRPassword when AMR is
// ["pwd"], else provider.ACRUnspecified).
func (p *Pending) Complete(w http.ResponseWriter, r *http.Request, login provider.Login) {
	if login.Subject == "" {
		p.s.p.Logger().ErrorContext(r.Context(), "pending login completed without a subject")
		p.s.renderError(w, r, http.StatusInternalServerError, engine.CodeServerError, "")
		return
	}
	at := login.AuthTime
	if at.IsZero() {
		at = p.s.p.Now()
	}
	sess := p.s.session(r)
	sess.logIn(login.Subject, at, login.AMR...)
	sess.setACR(login.ACR)
	if err := p.s.save(w, r, sess); err != nil {
		p.s.p.Logger().ErrorContext(r.Context(), "save login session", "error", err)
		p.s.renderError(w, r, http.StatusInternalServerError, engine.CodeServerError, "")
		return
	}
	p.s.p.Logger().InfoContext(r.Context(), "user logged in", "subject", login.Subject)
	to, _ := p.s.resumeURL(p.request, "login")
	if p.areq.MaxAge >= 0 && p.s.p.Now().Sub(at).Truncate(time.Second) > p.areq.MaxAge {
		// The app's login is older than max_age (to the second, as
		// auth_time): it does not satisfy the
		// request, which goes back to the app's login, max_age kept.
		to = p.s.loginURL + "?" + p.request
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// Deny ends the request: the app receives access_denied.
func (p *Pending) Deny(w http.ResponseWriter, r *http.Request, description string) {
	http.Redirect(w, r, p.s.p.Refuse(r.Context(), p.areq, engine.CodeAccessDenied, description), http.StatusSeeOther)
}
