package main

import (
	"crypto/subtle"
	"html/template"
	"net/http"

	"github.com/pixieauth/pixie/handlers"
	"github.com/pixieauth/pixie/provider"
)

// mountCompanyLogin mounts the app's own login ("company login", -login
// company), which replaces pixie's login page (handlers.Config.LoginURL):
// the bring-your-own-login API. pixie sends users who must log in to /company/login with the pending
// authorization request; the app authenticates them its own way (here: the
// employee alice and the demo password) and hands pixie the subject.
func mountCompanyLogin(mux *http.ServeMux, srv *handlers.Server, o options) {
	page := template.Must(template.New("company").Parse(companyPage))
	show := func(w http.ResponseWriter, pending *handlers.Pending, msg string) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'; form-action 'self'")
		_ = page.Execute(w, struct {
			App, Error, Hint string
		}{pending.ClientName, msg, pending.LoginHint})
	}
	mux.HandleFunc("GET /company/login", func(w http.ResponseWriter, r *http.Request) {
		pending, err := srv.PendingLogin(r)
		if err != nil {
			http.Error(w, "no sign-in in progress", http.StatusBadRequest)
			return
		}
		show(w, pending, "")
	})
	// The form posts back to the same URL: the query still carries the
	// pending request. A real app would also protect it against CSRF and
	// throttle it.
	mux.Handle("POST /company/login", http.NewCrossOriginProtection().Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pending, err := srv.PendingLogin(r)
		if err != nil {
			http.Error(w, "no sign-in in progress", http.StatusBadRequest)
			return
		}
		employee, password := r.PostFormValue("employee"), r.PostFormValue("password")
		ok := subtle.ConstantTimeCompare([]byte(password), []byte(o.demoPassword)) == 1
		if employee != "alice" || !ok {
			show(w, pending, "Unknown employee or wrong password.")
			return
		}
		pending.Complete(w, r, provider.Login{Subject: "alice", AMR: []string{"pwd"}})
	})))
}

const companyPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Example Corp sign-in</title></head>
<body>
<h1>Example Corp sign-in</h1>
<p>{{.App}} wants you to sign in with your Example Corp account.</p>
{{if .Error}}<p role="alert">{{.Error}}</p>{{end}}
<form method="post">
<label for="employee">Employee</label> <input id="employee" name="employee" value="{{.Hint}}" required>
<label for="password">Password</label> <input id="password" name="password" type="password" required>
<button type="submit">Sign in</button>
</form>
</body></html>
`
