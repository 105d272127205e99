package handlers

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"

	"github.com/pixieauth/pixie/internal/engine"
	"github.com/pixieauth/pixie/provider"
	"github.com/pixieauth/pixie/store"
)

// ScopeDescription is one line of the consent page.
type ScopeDescription struct {
	Scope       string // the scope, e.g. email
	Description string // what it lets the app do, in plain words
}

// ConsentPage is the data of consent.html.
type ConsentPage struct {
	Nonce      string
	ClientName string // the app asking
	// API is the API its access token is for, or "": the consent given is
	// for that API only. The default page names it.
	API       string
	Scopes    []ScopeDescription // what it asks for; may be empty when API is not
	CSRFToken string             // must be posted back as csrf_token
	Request   string             // the pending request; posted back as request
	Action    string             // where the form posts; the button pressed is posted as decision=allow or deny
}

// scopeWords describes the scopes of OpenID Connect.
var scopeWords = map[string]string{
	"openid":         "Sign you in with your account",
	"profile":        "See your name and profile",
	"email":          "See your email address",
	"address":        "See your postal address",
	"phone":          "See your phone number",
	"offline_access": "Stay signed in when you are not using it",
	"offline":        "Stay signed in when you are not using it",
}

func describeScopes(scopes []string, api string) []ScopeDescription {
	out := make([]ScopeDescription, 0, len(scopes))
	for _, sc := range scopes {
		d, ok := scopeWords[sc]
		if !ok {
			d = "Use " + api + " on your behalf: " + sc
		}
		out = append(out, ScopeDescription{Scope: sc, Description: d})
	}
	return out
}

// needsConsent reports whether the user must be asked before the client
// gets what it asks for: never for a first-party client; for others when
// prompt=consent, or when the user has no unexpired consent to the client
// for the request's audience (its API, or none) that covers every scope
// asked. A request with no scope needs a consent all the same, for its API
// or for none: the access token names the user (sub) to whoever reads it.
func (s *Server) needsConsent(r *http.Request, areq *engine.AuthorizeRequest, sub string) (bool, error) {
	if areq.Client.FirstParty {
		return false, nil
	}
	if slices.Contains(areq.Prompt, "consent") {
		return true, nil
	}
	c, err := s.consentFor(r.Context(), sub, areq)
	if err != nil {
		return false, err
	}
	if c == nil {
		return true, nil
	}
	for _, sc := range areq.Scopes {
		if !slices.Contains(c.Scopes, sc) {
			return true, nil
		}
	}
	return false, nil
}

// consentFor returns the user's unexpired consent to the request's client
// for its audience, or nil if there is none.
func (s *Server) consentFor(ctx context.Context, sub string, areq *engine.AuthorizeRequest) (*store.Consent, error) {
	c, err := s.consents.Consent(ctx, sub, areq.Client.ID, areq.API)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	case !s.p.Now().Before(c.ExpiresAt):
		return nil, nil
	}
	return c, nil
}

// consentPage asks the logged-in user whether the app may have what it asks
// for.
func (s *Server) consentPage(w http.ResponseWriter, r *http.Request) {
	request := r.URL.RawQuery
	areq, err := s.parseRequest(r.Context(), request)
	if err != nil {
		s.authorizeFailed(w, r, err)
		return
	}
	if sub, _, _ := s.session(r).subject(); sub == "" {
		http.Redirect(w, r, s.loginURL+"?"+request, http.StatusSeeOther)
		return
	}
	token, ok := s.formToken(w, r)
	if !ok {
		return
	}
	page := ConsentPage{
		Nonce:      newNonce(),
		ClientName: displayName(areq.Client),
		API:        areq.API,
		Scopes:     describeScopes(areq.Scopes, areq.API),
		CSRFToken:  token,
		Request:    request,
		Action:     s.link(PathConsent),
	}
	s.render(w, r, http.StatusOK, "consent.html", page.Nonce, page)
}

// consentSubmit records the user's answer: allow remembers the scopes for
// the request's audience, for Config.ConsentLifetime, and resumes the
// request; deny ends it with access_denied.
func (s *Server) consentSubmit(w http.ResponseWriter, r *http.Request) {
	sess, ok := s.postedForm(w, r)
	if !ok {
		return
	}
	request := r.PostForm.Get("request")
	areq, err := s.parseRequest(r.Context(), request)
	if err != nil {
		s.authorizeFailed(w, r, err)
		return
	}
	sub, _, _ := sess.subject()
	if sub == "" {
		http.Redirect(w, r, s.loginURL+"?"+request, http.StatusSeeOther)
		return
	}
	if r.PostForm.Get("decision") != "allow" {
		s.p.Logger().InfoContext(r.Context(), "user denied consent", "client_id", areq.Client.ID, "subject", sub)
		s.emit(r.Context(), provider.EventConsentDenied, sub, areq.Client.ID)
		http.Redirect(w, r, s.p.Refuse(r.Context(), areq, engine.CodeAccessDenied, "The user denied the request."), http.StatusSeeOther)
		return
	}
	if err := s.rememberConsent(r.Context(), sub, areq); err != nil {
		s.p.Logger().ErrorContext(r.Context(), "save consent", "error", err)
		s.renderError(w, r, failureStatus(err), engine.CodeServerError, "")
		return
	}
	s.emit(r.Context(), provider.EventConsentGiven, sub, areq.Client.ID)
	if q, _ := url.ParseQuery(request); q.Has("request_uri") && slices.Contains(areq.Prompt, "consent") {
		// A pushed request (RFC 9126) is resumed as it was pushed, so its
		// prompt=consent cannot be dropped from it as resumeURL does: the
		// consent just given answers it, and the code is issued here,
		// after the checks the authorization endpoint makes before it.
		if _, authTime, _ := sess.subject(); s.needsLogin(areq, sub, authTime) {
			http.Redirect(w, r, s.loginURL+"?"+request, http.StatusSeeOther)
			return
		}
		s.issueCode(w, r, areq, sess)
		return
	}
	to, _ := s.resumeURL(request, "consent")
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// rememberConsent saves the scopes sub allowed the request's client for
// its audience, so that later requests for them need not ask again.
func (s *Server) rememberConsent(ctx context.Context, sub string, areq *engine.AuthorizeRequest) error {
	// What the user allowed before, for this audience and unexpired, is
	// kept, but not made to last longer: the record lasts from now only if
	// the user was shown all of it now, and otherwise expires when the
	// earlier consent does.
	old, err := s.consentFor(ctx, sub, areq)
	if err != nil {
		return err
	}
	granted := slices.Clone(areq.Scopes)
	exp := s.p.Now().Add(s.consentLifetime)
	if old != nil {
		granted = append(granted, old.Scopes...)
		if !subset(old.Scopes, areq.Scopes) && old.ExpiresAt.Before(exp) {
			exp = old.ExpiresAt
		}
	}
	slices.Sort(granted)
	return s.consents.SaveConsent(ctx, &store.Consent{
		Subject: sub, ClientID: areq.Client.ID, Audience: areq.API,
		Scopes: slices.Compact(granted), ExpiresAt: exp,
	})
}

// subset reports whether every element of a is in b.
func subset(a, b []string) bool {
	for _, x := range a {
		if !slices.Contains(b, x) {
			return false
		}
	}
	return true
}
