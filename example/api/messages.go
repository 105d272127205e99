package main

import (
	"encoding/json"
	"errors"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/pixieauth/pixie/middleware"
)

// Limits of the in-memory message store.
const (
	maxBody        = 4 << 10 // bytes of a POST body
	maxTextRunes   = 500     // characters of a message
	maxPerSubject  = 100     // messages kept per user; the oldest go first
	scopeRead      = "read:messages"
	scopeWrite     = "write:messages"
	contentTypeKey = "Content-Type"
)

// message is one message of a user.
type message struct {
	ID       int       `json:"id"`
	Text     string    `json:"text"`
	ClientID string    `json:"client_id"` // the app that posted it
	Created  time.Time `json:"created_at"`
}

// messagesResponse is the body of GET /api/messages: who the token says the
// caller is, and that user's messages.
type messagesResponse struct {
	Subject  string    `json:"sub"`
	ClientID string    `json:"client_id"`
	Scope    string    `json:"scope"`
	Messages []message `json:"messages"`
}

// api serves the example API. Messages live in memory, per user (the
// token's sub), and are lost on restart. It is safe for concurrent use.
type api struct {
	log *slog.Logger
	now func() time.Time

	mu     sync.Mutex
	bySub  map[string][]message
	nextID int
}

func newAPI(log *slog.Logger) *api {
	return &api{log: log, now: time.Now, bySub: map[string][]message{}}
}

// routes registers the API on mux: /api/public for anyone, /api/messages
// behind middleware.RequireToken with the scope each method needs.
func (a *api) routes(mux *http.ServeMux, v *middleware.Verifier) {
	mux.HandleFunc("GET /api/public", a.public)
	mux.Handle("GET /api/messages", middleware.RequireToken(v, scopeRead)(http.HandlerFunc(a.list)))
	mux.Handle("POST /api/messages", middleware.RequireToken(v, scopeWrite)(http.HandlerFunc(a.post)))
}

// public needs no token.
func (a *api) public(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{
		"message": "Hello from example/api. This endpoint is public; GET /api/messages needs a token with read:messages.",
	})
}

// list returns the caller's messages: those of the token's sub.
func (a *api) list(w http.ResponseWriter, r *http.Request) {
	tok, _ := middleware.TokenFrom(r.Context()) // RequireToken put it there
	a.mu.Lock()
	msgs := append([]message{}, a.bySub[tok.Subject]...)
	a.mu.Unlock()
	writeJSON(w, http.StatusOK, messagesResponse{
		Subject:  tok.Subject,
		ClientID: tok.ClientID,
		Scope:    strings.Join(tok.Scopes, " "),
		Messages: msgs,
	})
}

// post appends a message, {"text": "…"}, to the caller's.
func (a *api) post(w http.ResponseWriter, r *http.Request) {
	tok, _ := middleware.TokenFrom(r.Context())
	if mt, _, err := mime.ParseMediaType(r.Header.Get(contentTypeKey)); err != nil || mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "The body must be application/json.")
		return
	}
	var in struct {
		Text string `json:"text"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			writeError(w, http.StatusRequestEntityTooLarge, "The body is too large.")
			return
		}
		writeError(w, http.StatusBadRequest, `The body must be a JSON object {"text": "…"}.`)
		return
	}
	text := strings.TrimSpace(in.Text)
	if text == "" || !utf8.ValidString(text) || utf8.RuneCountInString(text) > maxTextRunes {
		writeError(w, http.StatusBadRequest, "text must be 1 to 500 characters of UTF-8.")
		return
	}

	a.mu.Lock()
	a.nextID++
	m := message{ID: a.nextID, Text: text, ClientID: tok.ClientID, Created: a.now().UTC().Truncate(time.Second)}
	msgs := append(a.bySub[tok.Subject], m)
	if len(msgs) > maxPerSubject {
		msgs = append([]message(nil), msgs[len(msgs)-maxPerSubject:]...)
	}
	a.bySub[tok.Subject] = msgs
	a.mu.Unlock()

	a.log.InfoContext(r.Context(), "message posted", "sub", tok.Subject, "client_id", tok.ClientID, "id", m.ID)
	writeJSON(w, http.StatusCreated, m)
}

// writeJSON writes v as the JSON body. Responses are per user, so no cache
// may keep them.
func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set(contentTypeKey, "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError writes an invalid_request error in the shape the middleware
// uses for its refusals.
func writeError(w http.ResponseWriter, status int, description string) {
	writeJSON(w, status, map[string]string{"error": "invalid_request", "error_description": description})
}
