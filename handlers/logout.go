package handlers

import (
	"net/http"
	"net/url"
	"slices"

	"github.com/pixieauth/pixie/store"
)

// logoutRequest is an RP-initiated logout request (OpenID Connect
// RP-Initiated Logout 1.0 §2), checked.
type logoutRequest struct {
	params   url.Values    // id_token_hint, client_id, post_logout_redirect_uri, state
	hintSub  string        // the subject of a valid id_token_hint, or ""
	client   *store.Client // the client asking, if known
	redirect string        // where to send the browser afterwards, or "" for the signed-out page
}

// logoutParams are the parameters a logout request may carry.
var logoutParams = []string{"id_token_hint", "client_id", "post_logout_redirect_uri", "state"}

// parseLogout checks a logout request's parameters. A bad id_token_hint, a
// client_id the hint was not issued to, or a post_logout_redirect_uri the
// client did not register yield an error page: never a redirect to an
// address nobody registered.
func (s *Server) parseLogout(w http.ResponseWriter, r *http.Request, q url.Values) (*logoutRequest, bool) {
	ctx := r.Context()
	lr := &logoutRequest{params: url.Values{}}
	for _, k := range logoutParams {
		if v := q.Get(k); v != "" {
			lr.params.Set(k, v)
		}
	}
	clientID := lr.params.Get("client_id")
	if raw := lr.params.Get("id_token_hint"); raw != "" {
		hint, err := s.p.VerifyIDTokenHint(ctx, raw)
		if err != nil {
			s.renderError(w, r, http.StatusBadRequest, "invalid_request", "The id_token_hint is not an ID token this server issued.")
			return nil, false
		}
		lr.hintSub = hint.Subject
		switch {
		case clientID == "" && len(hint.Audience) == 1:
			clientID = hint.Audience[0]
		case clientID != "" && !slices.Contains(hint.Audience, clientID):
			s.renderError(w, r, http.StatusBadRequest, "invalid_request", "The id_token_hint was not issued to this client_id.")
			return nil, false
		}
	}
	if clientID != "" {
		c, err := s.p.Client(ctx, clientID)
		if err != nil {
			s.renderError(w, r, http.StatusBadRequest, "invalid_request", "The client is unknown.")
			return nil, false
		}
		lr.client = c
	}
	if to := lr.params.Get("post_logout_redirect_uri"); to != "" {
		if lr.client == nil || !slices.Contains(lr.client.PostLogoutRedirectURIs, to) {
			s.renderError(w, r, http.StatusBadRequest, "invalid_request", "The post_logout_redirect_uri is not registered for this client.")
			return nil, false
		}
		u, err := url.Parse(to)
		if err != nil {
			s.renderError(w, r, http.StatusBadRequest, "invalid_request", "The post_logout_redirect_uri is malformed.")
			return nil, false
		}
		if st := lr.params.Get("state"); st != "" {
			v := u.Query()
			v.Set("state", st)
			u.RawQuery = v.Encode()
		}
		lr.redirect = u.String()
	}
	return lr, true
}

// logout serves GET and POST /logout, the end_session_endpoint. A request
// whose id_token_hint names the logged-in user (or when nobody is logged
// in) ends the session at once; otherwise the user is asked to confirm, so
// that a link on another site cannot log them out.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.renderError(w, r, http.StatusBadRequest, "invalid_request", "The request could not be read.")
		return
	}
	lr, ok := s.parseLogout(w, r, r.Form)
	if !ok {
		return
	}
	sess := s.session(r)
	sub, _, _ := sess.subject()
	if sub == "" || (lr.hintSub != "" && lr.hintSub == sub) {
		s.endSession(w, r, sess, lr)
		return
	}
	token, ok := s.formToken(w, r)
	if !ok {
		return
	}
	page := LogoutPage{Nonce: newNonce(), CSRFToken: token, Action: s.link(PathLogout + "/confirm"), Request: lr.params.Encode()}
	if lr.client != nil {
		page.ClientName = displayName(lr.client)
	}
	s.render(w, r, http.StatusOK, "logout.html", page.Nonce, page)
}

// logoutConfirm serves the confirmation form's POST.
func (s *Server) logoutConfirm(w http.ResponseWriter, r *http.Request) {
	sess, ok := s.postedForm(w, r)
	if !ok {
		return
	}
	q, err := url.ParseQuery(r.PostForm.Get("request"))
	if err != nil {
		s.renderError(w, r, http.StatusBadRequest, "invalid_request", "The form could not be read.")
		return
	}
	lr, ok := s.parseLogout(w, r, q)
	if !ok {
		return
	}
	s.endSession(w, r, sess, lr)
}

// endSession ends the login session and sends the browser on. It revokes
// the session's record, so that no copy of the cookie works any more, on
// any replica; if that fails, the cookie is kept and the user told to try
// again, rather than shown a logout that did not happen.
func (s *Server) endSession(w http.ResponseWriter, r *http.Request, sess loginSession, lr *logoutRequest) {
	if id := sess.id(); id != "" {
		if err := s.sessions.RevokeSession(r.Context(), sessionKey(id)); err != nil {
			s.p.Logger().ErrorContext(r.Context(), "end login session", "error", err)
			s.renderError(w, r, http.StatusInternalServerError, "server_error", "Signing out did not complete. Try again later.")
			return
		}
	}
	if sub, _, _ := sess.subject(); sub != "" {
		s.p.Logger().InfoContext(r.Context(), "user logged out", "subject", sub)
		client := ""
		if lr.client != nil {
			client = lr.client.ID
		}
		s.emit(r.Context(), eventLogout, sub, client)
	}
	sess.end()
	if err := s.save(w, r, sess); err != nil {
		s.p.Logger().ErrorContext(r.Context(), "end login session", "error", err)
	}
	noStore(w.Header())
	if lr.redirect != "" {
		http.Redirect(w, r, lr.redirect, http.StatusSeeOther)
		return
	}
	nonce := newNonce()
	s.render(w, r, http.StatusOK, "logout.html", nonce, LogoutPage{Nonce: nonce, Done: true})
}

// displayName is how a client is named on pages.
func displayName(c *store.Client) string {
	if c.Name != "" {
		return c.Name
	}
	return c.ID
}
