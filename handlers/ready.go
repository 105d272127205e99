package handlers

import (
	"net/http"

	"github.com/pixieauth/pixie/internal/storetimeout"
)

// Ready returns a readiness check for the host's /readyz: it answers 200
// "ok" when the provider is ready (its stores answer, its signing keys
// are loaded) and the Server's own stores
// (Sessions, Consents, Throttle) answer too, each store that is a
// [store.Pinger] pinged within provider.Config.StoreTimeout; otherwise 503
// "not ready", the cause logged at Warn, never sent. It is not one of the
// routes Register mounts: mount it where the host's probes look.
func (s *Server) Ready() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		err := s.p.Ready(ctx)
		if err == nil {
			err = storetimeout.Ping(ctx, s.p.StoreTimeout(), s.sessions, s.consents, s.logins.st)
		}
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("Content-Type", "text/plain; charset=utf-8")
		if err != nil {
			s.p.Logger().WarnContext(ctx, "not ready", "error", err)
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("not ready\n"))
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
}
