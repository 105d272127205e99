package main

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"sync/atomic"
)

// callbackResult is what the loopback redirect delivered.
type callbackResult struct {
	// code is the authorization code; empty when err is set.
	code string
	// issPresent reports whether the RFC 9207 "iss" parameter was sent (it
	// matched the issuer if so, or err is set).
	issPresent bool
	// err describes why the redirect was rejected.
	err error
}

// callbackHandler handles the one redirect back from the authorization
// server (RFC 8252 §7.3). The first GET decides the outcome, whatever it is;
// later requests are refused, so a second (replayed or injected) redirect can
// never replace the first.
type callbackHandler struct {
	state  string // the state sent in the authorization request
	issuer string // the issuer from discovery
	// issRequired is true when discovery says
	// authorization_response_iss_parameter_supported: then a missing "iss"
	// is an error (RFC 9207 §2.4).
	issRequired bool

	done    atomic.Bool
	results chan<- callbackResult // buffered, capacity 1
}

var callbackPage = template.Must(template.New("callback").Parse(`<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>pixie example client</title></head>
<body>
{{if .}}<h1>Login failed</h1>
<p>{{.}}</p>
<p>You can close this tab; details are in the terminal.</p>
{{else}}<h1>Login complete, you can close this tab</h1>
<p>The example client continues in the terminal.</p>
{{end}}</body>
</html>
`))

func (h *callbackHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if !h.done.CompareAndSwap(false, true) {
		http.Error(w, "this login has already been handled", http.StatusConflict)
		return
	}

	res := h.check(r)

	hdr := w.Header()
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Cache-Control", "no-store")
	// The URL carried the code: don't leak it through a Referer header.
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
	msg := ""
	if res.err != nil {
		msg = res.err.Error()
		w.WriteHeader(http.StatusBadRequest)
	}
	_ = callbackPage.Execute(w, msg) // a browser that went away changes nothing

	h.results <- res // never blocks: one send into a buffer of one
}

// check validates the redirect's query parameters, in order: state (binds the
// response to our request), iss (RFC 9207: which server answered), then an
// error response (RFC 6749 §4.1.2.1), then the code.
func (h *callbackHandler) check(r *http.Request) callbackResult {
	q := r.URL.Query()

	state := q.Get("state")
	if state == "" {
		return callbackResult{err: errors.New("redirect has no state parameter")}
	}
	if subtle.ConstantTimeCompare([]byte(state), []byte(h.state)) != 1 {
		return callbackResult{err: errors.New("state mismatch: this redirect does not answer our request")}
	}

	var res callbackResult
	if q.Has("iss") {
		res.issPresent = true
		if iss := q.Get("iss"); iss != h.issuer {
			res.err = fmt.Errorf("iss parameter %q does not match the issuer %q (RFC 9207 mix-up defense)", iss, h.issuer)
			return res
		}
	} else if h.issRequired {
		res.err = errors.New("iss parameter missing, but discovery says authorization_response_iss_parameter_supported (RFC 9207 §2.4)")
		return res
	}

	if e := q.Get("error"); e != "" {
		res.err = &authError{code: e, description: q.Get("error_description"), uri: q.Get("error_uri")}
		return res
	}

	res.code = q.Get("code")
	if res.code == "" {
		res.err = errors.New("redirect has neither code nor error parameter")
	}
	return res
}

// authError is an error response from the authorization endpoint
// (RFC 6749 §4.1.2.1).
type authError struct {
	code, description, uri string
}

// Error quotes the server's strings: they come from a URL anyone can craft and
// end up on a terminal.
func (e *authError) Error() string {
	s := fmt.Sprintf("authorization server returned error %q", e.code)
	if e.description != "" {
		s += fmt.Sprintf(": %q", e.description)
	}
	if e.uri != "" {
		s += fmt.Sprintf(" (%q)", e.uri)
	}
	return s
}
