package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/pixieauth/pixie/store"
	"github.com/pixieauth/pixie/store/sqlstore"
	"github.com/pixieauth/pixie/store/sqlstore/sqlite"
)

// A server opens its store on every start and registers its clients each
// time, ignoring the ones already there.
func ExampleOpen() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "pixie-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "pixie.db")
	keySecret := []byte("an example secret of 32 bytes or more; use a random one")

	for start := 1; start <= 2; start++ {
		s, err := sqlite.Open(ctx, path, sqlstore.Config{KeySecret: keySecret})
		if err != nil {
			log.Fatal(err)
		}
		err = s.AddClient(ctx, &store.Client{
			ID:           "com.example.app",
			Name:         "Example App",
			RedirectURIs: []string{"com.example.app:/oauth2redirect"},
			Native:       true,
		})
		switch {
		case errors.Is(err, store.ErrAlreadyExists):
			fmt.Printf("start %d: client already registered\n", start)
		case err != nil:
			log.Fatal(err)
		default:
			fmt.Printf("start %d: client registered\n", start)
		}
		c, err := s.Client(ctx, "com.example.app")
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(c.Name, c.RedirectURIs)
		s.Close()
	}
	// Output:
	// start 1: client registered
	// Example App [com.example.app:/oauth2redirect]
	// start 2: client already registered
	// Example App [com.example.app:/oauth2redirect]
}

// A program that opens its *sql.DB pools itself, e.g. to set their limits,
// gives sqlstore.New the writer and, as Config.ReadDB, a pool of readers.
func ExampleReadDSN() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "pixie-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "pixie.db")

	db, err := sql.Open("sqlite", sqlite.DSN(path)) // first: it switches the file to WAL
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1) // SQLite's single writer
	readers, err := sql.Open("sqlite", sqlite.ReadDSN(path))
	if err != nil {
		log.Fatal(err)
	}
	defer readers.Close()
	readers.SetMaxOpenConns(8)
	readers.SetMaxIdleConns(8)

	s, err := sqlstore.New(ctx, db, sqlstore.Config{
		Dialect:   sqlstore.SQLite,
		KeySecret: []byte("an example secret of 32 bytes or more; use a random one"),
		ReadDB:    readers,
	})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	if err := s.AddClient(ctx, &store.Client{ID: "com.example.app", Native: true,
		RedirectURIs: []string{"com.example.app:/oauth2redirect"}}); err != nil {
		log.Fatal(err)
	}
	c, err := s.Client(ctx, "com.example.app") // answered by a reader
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(c.ID, "read back;", "readers allowed:", readers.Stats().MaxOpenConnections)
	// Output:
	// com.example.app read back; readers allowed: 8
}
