package handlers_test

import (
	"context"
	"log"
	"net/http"

	"github.com/pixieauth/pixie/handlers"
	"github.com/pixieauth/pixie/provider"
	"github.com/pixieauth/pixie/store/memory"
)

// ExampleServer_PendingLogin lets the app's own login page sign users in
// (bring your own login: SSO, passkeys, whatever the app has): pixie sends
// the browser to Config.LoginURL with the authorization request waiting,
// and the app, once it knows who the user is, completes it.
func ExampleServer_PendingLogin() {
	st := memory.New()
	p, err := provider.New(context.Background(), provider.Config{
		Issuer:  "https://login.example.com",
		Clients: st, Users: st, Grants: st, Keys: st,
	})
	if err != nil {
		log.Fatal(err)
	}
	srv, err := handlers.New(p, handlers.Config{LoginURL: "/company/login"})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	srv.Register(mux)
	mux.HandleFunc("/company/login", func(w http.ResponseWriter, r *http.Request) {
		pending, err := srv.PendingLogin(r) // the authorization request waiting on this login
		if err != nil {
			http.Error(w, "no sign-in in progress", http.StatusBadRequest)
			return
		}
		subject, ok := appSession(r) // however the app knows who this is
		if !ok {
			http.Redirect(w, r, "/sso/start?app="+pending.ClientID, http.StatusSeeOther)
			return
		}
		pending.Complete(w, r, provider.Login{Subject: subject, AMR: []string{"pwd", "otp"}})
	})
}

// appSession stands for the app's own session lookup.
func appSession(*http.Request) (subject string, ok bool) { return "", false }
