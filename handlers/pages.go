package handlers

import (
	"bytes"
	"crypto/rand"
	"embed"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
)

//go:embed templates/*.html
var defaultTemplates embed.FS

// pageNames are the files a template set consists of.
var pageNames = []string{"base.html", "login.html", "consent.html", "error.html", "logout.html"}

// LoginPage is the data of login.html.
type LoginPage struct {
	Nonce      string // CSP nonce for inline <style> and <script> elements
	ClientName string // the app asking, or "" when the user came directly
	Username   string // pre-filled username (after a failed attempt)
	Error      string // why the last attempt failed, or ""
	CSRFToken  string // must be posted back as csrf_token
	Request    string // the pending authorization request; posted back as request
	Action     string // where the form posts
}

// ErrorPage is the data of error.html, shown for errors that must not be
// redirected to the client (an unknown client, a bad redirect URI).
type ErrorPage struct {
	Nonce       string
	Code        string // the OAuth error code, e.g. invalid_request
	Description string // a description for the developer of the app
	// ServerFault is set when the server, not the app, failed (a 5xx: a
	// store down or timing out): the person may try again later.
	ServerFault bool
}

// LogoutPage is the data of logout.html: a confirmation form, or (Done) the
// news that the session ended.
type LogoutPage struct {
	Nonce      string
	Done       bool   // true once the session has ended
	ClientName string // the app that asked for the logout, or ""
	CSRFToken  string // must be posted back as csrf_token
	Request    string // the logout request; posted back as request
	Action     string // where the form posts
}

// pages holds the parsed templates.
type pages struct {
	t map[string]*template.Template
}

// parsePages parses the embedded pages, each overridden by the file of the
// same name in override when it has one.
func parsePages(override fs.FS) (*pages, error) {
	src := map[string][]byte{}
	for _, name := range pageNames {
		b, err := defaultTemplates.ReadFile("templates/" + name)
		if err != nil {
			return nil, fmt.Errorf("handlers: read template %s: %w", name, err)
		}
		if override != nil {
			if ob, err := fs.ReadFile(override, name); err == nil {
				b = ob
			} else if !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("handlers: read template %s: %w", name, err)
			}
		}
		src[name] = b
	}
	p := &pages{t: map[string]*template.Template{}}
	for _, name := range pageNames[1:] {
		t, err := template.New(name).Parse(string(src[name]))
		if err != nil {
			return nil, fmt.Errorf("handlers: parse template %s: %w", name, err)
		}
		if _, err := t.New("base.html").Parse(string(src["base.html"])); err != nil {
			return nil, fmt.Errorf("handlers: parse template base.html: %w", err)
		}
		p.t[name] = t
	}
	return p, nil
}

// newNonce returns a fresh CSP nonce.
func newNonce() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // crypto/rand never fails on supported platforms
	return base64.RawStdEncoding.EncodeToString(b)
}

// securePage sets the headers every page carries: it may not be framed,
// sniffed, cached or leak its URL, and runs only what the nonce allows.
func securePage(h http.Header, nonce string) {
	h.Set("Content-Security-Policy", "default-src 'self'; script-src 'nonce-"+nonce+"'; style-src 'nonce-"+nonce+"'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
}

// render writes a page. The template runs into a buffer first, so that a
// failing template yields a clean 500 instead of half a page.
func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name, nonce string, data any) {
	var buf bytes.Buffer
	if err := s.pages.t[name].ExecuteTemplate(&buf, name, data); err != nil {
		s.p.Logger().ErrorContext(r.Context(), "render page", "page", name, "error", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	securePage(w.Header(), nonce)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// renderError shows an error page.
func (s *Server) renderError(w http.ResponseWriter, r *http.Request, status int, code, description string) {
	nonce := newNonce()
	s.render(w, r, status, "error.html", nonce, ErrorPage{Nonce: nonce, Code: code, Description: description, ServerFault: status >= 500})
}
