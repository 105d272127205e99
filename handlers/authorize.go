package handlers

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/pixieauth/pixie/internal/engine"
	"github.com/pixieauth/pixie/internal/telemetry"
	"github.com/pixieauth/pixie/provider"
)

// authorize serves the authorization endpoint: it validates the request,
// sends a visitor without a (fresh enough) login session to the login page,
// and otherwise issues a code and redirects to the client.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	areq, err := s.p.ParseAuthorizeRequest(ctx, r)
	if err != nil {
		s.authorizeFailed(w, r, err)
		return
	}
	sess := s.session(r)
	if sess.err != nil {
		http.Redirect(w, r, s.p.Refuse(ctx, areq, engine.CodeServerError, "The server could not complete the request."), http.StatusSeeOther)
		return
	}
	sub, authTime, _ := sess.subject()
	if s.needsLogin(areq, sub, authTime) {
		if slices.Contains(areq.Prompt, "none") {
			http.Redirect(w, r, s.p.Refuse(ctx, areq, "login_required", "The user is not logged in."), http.StatusSeeOther)
			return
		}
		// r.Form holds the query and, for POST, the body: resume with all of it.
		s.tel.AuthorizeOutcome(ctx, telemetry.OutcomeLoginShown, areq.Client.ID)
		http.Redirect(w, r, s.loginURL+"?"+r.Form.Encode(), http.StatusSeeOther)
		return
	}
	consent, err := s.needsConsent(r, areq, sub)
	if err != nil {
		s.p.Logger().ErrorContext(ctx, "read consent", "error", err)
		http.Redirect(w, r, s.p.Refuse(ctx, areq, engine.CodeServerError, "The server could not complete the request."), http.StatusSeeOther)
		return
	}
	if consent {
		if slices.Contains(areq.Prompt, "none") {
			http.Redirect(w, r, s.p.Refuse(ctx, areq, "consent_required", "The user has not allowed this client these scopes."), http.StatusSeeOther)
			return
		}
		s.tel.AuthorizeOutcome(ctx, telemetry.OutcomeConsentShown, areq.Client.ID)
		http.Redirect(w, r, s.link(PathConsent)+"?"+r.Form.Encode(), http.StatusSeeOther)
		return
	}
	s.issueCode(w, r, areq, sess)
}

// issueCode issues the code to the logged-in user and redirects to the
// client.
func (s *Server) issueCode(w http.ResponseWriter, r *http.Request, areq *engine.AuthorizeRequest, sess loginSession) {
	ctx := r.Context()
	sub, authTime, amr := sess.subject()
	to, err := s.p.IssueCode(ctx, areq, provider.Login{Subject: sub, AuthTime: authTime, AMR: amr, ACR: sess.acr()})
	if err != nil {
		s.authorizeFailed(w, r, err)
		return
	}
	s.touch(ctx, &sess)
	noStore(w.Header())
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// needsLogin reports whether the user must (re)authenticate first: no
// session, prompt=login, or a login older than max_age.
func (s *Server) needsLogin(areq *engine.AuthorizeRequest, sub string, authTime time.Time) bool {
	if sub == "" || slices.Contains(areq.Prompt, "login") {
		return true
	}
	// OIDC Core §3.1.2.1: re-authenticate when more than max_age seconds
	// have passed (max_age=0: always). The login then resumes the request
	// without max_age, which the fresh login satisfies.
	return areq.MaxAge >= 0 && s.p.Now().Sub(authTime) > areq.MaxAge
}

// authorizeFailed redirects an error to the client when the client and
// redirect URI checked out, and shows it on a page otherwise.
func (s *Server) authorizeFailed(w http.ResponseWriter, r *http.Request, err error) {
	var ae *engine.AuthorizeError
	if !errors.As(err, &ae) {
		s.renderError(w, r, http.StatusInternalServerError, engine.CodeServerError, "")
		return
	}
	if ae.RedirectURL != "" {
		noStore(w.Header())
		http.Redirect(w, r, ae.RedirectURL, http.StatusSeeOther)
		return
	}
	// A page for a person: 400, not fosite's 401 for invalid_client (which
	// would need a WWW-Authenticate challenge no browser can answer).
	status := http.StatusBadRequest
	if ae.Err.Status >= 500 {
		status = ae.Err.Status
	}
	s.renderError(w, r, status, ae.Err.Code, ae.Err.Description)
}

// resumeURL returns the authorization request to resume after a login or
// a consent: the pending request's parameters, minus the prompt value the
// step just honoured (login or consent) and, after a login, max_age, which
// the fresh login satisfies. It only ever points at this server's
// authorization endpoint.
func (s *Server) resumeURL(request, honoured string) (string, bool) {
	q, err := url.ParseQuery(request)
	if err != nil || q.Get("client_id") == "" {
		return "", false
	}
	if honoured == "login" {
		q.Del("max_age")
	}
	if p := q.Get("prompt"); p != "" {
		kept := slices.DeleteFunc(strings.Fields(p), func(v string) bool { return v == honoured })
		if len(kept) == 0 {
			q.Del("prompt")
		} else {
			q.Set("prompt", strings.Join(kept, " "))
		}
	}
	return s.link(PathAuthorize) + "?" + q.Encode(), true
}

// noStore forbids caching the response (RFC 6749 §5.1). It is h.Set of
// both headers, their values in one allocation of this response's own:
// each is a full slice, so that appending to one never writes into the
// other.
func noStore(h http.Header) {
	v := []string{"no-store", "no-cache"}
	h["Cache-Control"], h["Pragma"] = v[0:1:1], v[1:2:2]
}
