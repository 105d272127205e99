package memory_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/pixieauth/pixie/store"
	"github.com/pixieauth/pixie/store/memory"
)

func ExampleNew() {
	ctx := context.Background()
	s := memory.New()

	// A confidential web client: store only the hash of its secret.
	secretHash, err := store.HashSecret("client-secret")
	if err != nil {
		log.Fatal(err)
	}
	err = s.AddClient(ctx, &store.Client{
		ID:           "web",
		Name:         "Example Web App",
		SecretHash:   secretHash,
		RedirectURIs: []string{"https://app.example.com/callback"},
		Scopes:       []string{"openid", "profile", "email"},
	})
	if err != nil {
		log.Fatal(err)
	}

	// A user who logs in as alice; AddUser hashes the password.
	err = s.AddUser(ctx, &store.User{
		Subject:           "248289761001",
		PreferredUsername: "alice",
		Name:              "Alice Example",
		Email:             "alice@example.com",
		EmailVerified:     true,
	}, "alice", "correct horse battery staple")
	if err != nil {
		log.Fatal(err)
	}

	c, err := s.Client(ctx, "web")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("client %s (%s), public: %v\n", c.ID, c.Name, c.Public())

	sub, err := s.Authenticate(ctx, "alice", "correct horse battery staple")
	if err != nil {
		log.Fatal(err)
	}
	u, err := s.User(ctx, sub)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("subject %s: %s <%s>\n", sub, u.Name, u.Email)

	_, err = s.Authenticate(ctx, "alice", "wrong password")
	fmt.Println("wrong password:", errors.Is(err, store.ErrInvalidCredentials))
	_, err = s.Authenticate(ctx, "mallory", "correct horse battery staple")
	fmt.Println("unknown user:", errors.Is(err, store.ErrInvalidCredentials))

	// Output:
	// client web (Example Web App), public: false
	// subject 248289761001: Alice Example <alice@example.com>
	// wrong password: true
	// unknown user: true
}
