package handlers

import (
	"mime"
	"net/http"

	"github.com/pixieauth/pixie/internal/engine"
)

// MaxRequestBytes bounds the body of every request pixie's endpoints
// accept, and their query: 64 KiB, far above any legitimate OAuth or
// OpenID Connect request (whose individual parameters are bounded too: a
// state of 2048 bytes, a nonce of 512, …). A request announcing a larger body is
// refused before any of it is read, and the connection closed; a body that
// turns out larger stops being read at the limit.
const MaxRequestBytes = 64 << 10

// bounded wraps every endpoint with the one request-size rule: the body
// and query at most MaxRequestBytes, and no multipart body (every pixie
// endpoint takes application/x-www-form-urlencoded forms only; Go would
// otherwise parse multipart bodies of up to 32 MB, and fosite reads them).
// An endpoint that answers apps (api) gets an OAuth error, 400
// invalid_request (RFC 6749 §5.2); a page gets 413 or 415, for a person:
// no client can be told.
func (s *Server) bounded(h http.Handler, api bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		refuse := func(status int, description string) {
			noStore(w.Header())
			if api {
				writeJSON(w, http.StatusBadRequest, map[string]string{"error": engine.CodeInvalidRequest, "error_description": description})
				return
			}
			s.renderError(w, r, status, engine.CodeInvalidRequest, description)
		}
		if r.ContentLength > MaxRequestBytes || len(r.URL.RawQuery) > MaxRequestBytes {
			// Nothing of the body is read: close rather than drain it.
			w.Header().Set("Connection", "close")
			refuse(http.StatusRequestEntityTooLarge, "The request is too large.")
			return
		}
		if ct := r.Header.Get("Content-Type"); ct != "" {
			if mt, _, _ := mime.ParseMediaType(ct); mt == "multipart/form-data" {
				w.Header().Set("Connection", "close")
				refuse(http.StatusUnsupportedMediaType, "Multipart bodies are not accepted: send application/x-www-form-urlencoded.")
				return
			}
		}
		r.Body = http.MaxBytesReader(w, r.Body, MaxRequestBytes)
		h.ServeHTTP(w, r)
	})
}
