package provider_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"slices"

	"github.com/pixieauth/pixie/provider"
	"github.com/pixieauth/pixie/store"
	"github.com/pixieauth/pixie/store/memory"
)

// appUsers is a team's own user table, behind the two methods pixie asks
// for (store.Users). Here it is a map; in an app it is a query.
type appUsers struct {
	bySubject map[string]*store.User
	hashes    map[string]string // username → password hash (store.HashSecret, or bcrypt)
	subjects  map[string]string // username → subject
	dummy     string            // a hash to check against for unknown users
}

// Authenticate checks the password; an unknown user costs one hash check
// too, so that timing does not tell which usernames exist.
func (u *appUsers) Authenticate(_ context.Context, username, password string) (string, error) {
	hash, known := u.hashes[username]
	if !known {
		hash = u.dummy
	}
	ok, err := store.CheckSecret(hash, password)
	if err != nil {
		return "", err
	}
	if !ok || !known {
		return "", store.ErrInvalidCredentials
	}
	return u.subjects[username], nil
}

// User returns a copy of the profile.
func (u *appUsers) User(_ context.Context, subject string) (*store.User, error) {
	p, ok := u.bySubject[subject]
	if !ok {
		return nil, fmt.Errorf("app users: %q: %w", subject, store.ErrNotFound)
	}
	c := *p
	return &c, nil
}

// ExampleConfig_customUsers keeps the users in the app's own database: only
// Config.Users is the team's code, the other stores are pixie's.
func ExampleConfig_customUsers() {
	hash, err := store.HashSecret("correct horse battery staple")
	if err != nil {
		log.Fatal(err)
	}
	dummy, err := store.HashSecret("no one's password")
	if err != nil {
		log.Fatal(err)
	}
	users := &appUsers{
		bySubject: map[string]*store.User{"u-42": {Subject: "u-42", Name: "Alice", Email: "alice@example.com", EmailVerified: true}},
		hashes:    map[string]string{"alice": hash},
		subjects:  map[string]string{"alice": "u-42"},
		dummy:     dummy,
	}
	st := memory.New()
	if _, err := provider.New(context.Background(), provider.Config{
		Issuer:  "https://login.example.com",
		Clients: st, Grants: st, Keys: st,
		Users:  users,
		Logger: slog.New(slog.DiscardHandler),
	}); err != nil {
		log.Fatal(err)
	}
	sub, err := users.Authenticate(context.Background(), "alice", "correct horse battery staple")
	fmt.Println(sub, err)
	_, err = users.Authenticate(context.Background(), "alice", "wrong")
	fmt.Println(errors.Is(err, store.ErrInvalidCredentials))
	// Output:
	// u-42 <nil>
	// true
}

// ExampleRule adds the user's roles to the ID and access tokens of one
// app, and refuses tokens to suspended users, at login and at every
// refresh.
func ExampleRule() {
	roles := map[string][]string{"u-42": {"admin"}}
	suspended := map[string]bool{"u-7": true}
	rule := provider.Rule{
		Name: "roles",
		Run: func(ctx context.Context, rc *provider.RuleContext) error {
			if suspended[rc.User.Subject] {
				return provider.Deny("Your account is suspended.") // access_denied, or invalid_grant on a refresh
			}
			if rc.Client.ID == "admin-console" && slices.Contains(rc.Scopes, "openid") {
				rc.IDToken["https://example.com/roles"] = roles[rc.User.Subject]
				rc.AccessToken["https://example.com/roles"] = roles[rc.User.Subject]
			}
			return nil
		},
	}
	rc := &provider.RuleContext{
		Protocol: provider.ProtocolOIDCBasicProfile,
		Client:   &store.Client{ID: "admin-console"},
		User:     &store.User{Subject: "u-42"},
		Scopes:   []string{"openid"},
		IDToken:  map[string]any{}, AccessToken: map[string]any{},
	}
	fmt.Println(rule.Run(context.Background(), rc), rc.IDToken)
	rc.User = &store.User{Subject: "u-7"}
	fmt.Println(rule.Run(context.Background(), rc))
	// In an app: provider.Config{…, Rules: []provider.Rule{rule}}.
	// Output:
	// <nil> map[https://example.com/roles:[admin]]
	// Your account is suspended.
}

// ExampleConfig_events ships the audit events to a queue without making
// the request wait on the network: Events runs on the request's goroutine,
// so it only hands the event to a buffered channel that a goroutine of the
// app's drains (here into a slice; in an app, to Kafka, SQS, a SIEM…).
func ExampleConfig_events() {
	events := make(chan provider.Event, 1024)
	cfg := provider.Config{
		// …the stores and the issuer, as always…
		Events: func(ctx context.Context, e provider.Event) {
			select {
			case events <- e:
			default: // the queue is full: count it, never block a login
			}
		},
	}
	_ = cfg
	go func() {
		for e := range events {
			_ = e // publish e.Type, e.Subject, e.ClientID, e.Address, e.RequestID, e.Time
		}
	}()
}
