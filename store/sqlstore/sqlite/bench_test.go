package sqlite_test

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pixieauth/pixie/store"
	"github.com/pixieauth/pixie/store/sqlstore"
	"github.com/pixieauth/pixie/store/sqlstore/sqlite"
)

// benchSecret is the key-encryption secret of the benchmarks.
var benchSecret = []byte("benchmark key-encryption secret, 32+ bytes")

// benchConfigs are the connection setups compared: "one-conn", everything
// on one connection (what Open did before it had a read pool), and "open",
// the two pools of Open.
var benchConfigs = []struct {
	name string
	open func(b *testing.B, path string) (s *sqlstore.Store, writer, reader *sql.DB)
}{
	{"one-conn", func(b *testing.B, path string) (*sqlstore.Store, *sql.DB, *sql.DB) {
		db, err := sql.Open("sqlite", sqlite.DSN(path))
		if err != nil {
			b.Fatal(err)
		}
		db.SetMaxOpenConns(1)
		s, err := sqlstore.New(b.Context(), db, sqlstore.Config{Dialect: sqlstore.SQLite, KeySecret: benchSecret})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = s.Close(); _ = db.Close() })
		return s, db, db
	}},
	{"open", func(b *testing.B, path string) (*sqlstore.Store, *sql.DB, *sql.DB) {
		s, err := sqlite.Open(b.Context(), path, sqlstore.Config{KeySecret: benchSecret})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = s.Close() })
		return s.Store, s.DB(), s.ReadDB()
	}},
}

// BenchmarkFlowCalls makes, per iteration, the store calls of one
// authorization-code flow as package provider makes them: the client and
// the login session read outside any transaction, the code's three records
// written in one transaction, the token request's reads, compare-and-set
// and two inserts in another, and a read of the access token (a resource
// server's introspection). "parallel" runs it from 16 goroutines, as 16
// clients would. Besides ns/op it reports the time calls waited for the
// writing connection (writer-wait-µs/op; with one connection, every wait),
// from the pool's [sql.DBStats], and the size of the WAL file at the end
// (wal-MiB), which checkpoints keep bounded although readers are always at
// work.
func BenchmarkFlowCalls(b *testing.B) {
	for _, par := range []int{0, 16} {
		for _, cfg := range benchConfigs {
			name := "sequential/" + cfg.name
			if par > 0 {
				name = fmt.Sprintf("parallel=%d/%s", par, cfg.name)
			}
			b.Run(name, func(b *testing.B) {
				path := filepath.Join(b.TempDir(), "pixie.db")
				s, writer, _ := cfg.open(b, path)
				addBenchClient(b, s)
				var n atomic.Int64
				flow := func(ctx context.Context) {
					if err := flowCalls(ctx, s, fmt.Sprint(n.Add(1))); err != nil {
						b.Error(err)
					}
				}
				w0 := writer.Stats().WaitDuration
				b.ResetTimer()
				if par == 0 {
					for b.Loop() {
						flow(b.Context())
					}
				} else {
					runParallel(b, par, func() { flow(context.Background()) })
				}
				b.StopTimer()
				w := writer.Stats().WaitDuration - w0
				b.ReportMetric(float64(w.Microseconds())/float64(b.N), "writer-wait-µs/op")
				if fi, err := os.Stat(path + "-wal"); err == nil {
					b.ReportMetric(float64(fi.Size())/(1<<20), "wal-MiB")
				}
			})
		}
	}
}

// BenchmarkReadsWhileWriting is 16 goroutines reading (a grant, a client,
// a user: what /userinfo and a resource server's introspection ask) while
// one more goroutine writes flows' records in transactions, as a busy
// server's token requests do. It reports reads per second (reads/s, three
// per op) and write transactions per second (writes/s) over the same time.
func BenchmarkReadsWhileWriting(b *testing.B) {
	for _, cfg := range benchConfigs {
		b.Run(cfg.name, func(b *testing.B) {
			s, _, _ := cfg.open(b, filepath.Join(b.TempDir(), "pixie.db"))
			addBenchClient(b, s)
			ctx := context.Background()
			if err := s.AddUser(ctx, &store.User{Subject: "alice"}, "alice", "pw"); err != nil {
				b.Fatal(err)
			}
			if err := s.CreateGrant(ctx, benchRecord(store.KindAccessToken, "at-read", "read")); err != nil {
				b.Fatal(err)
			}
			stop := make(chan struct{})
			writerDone := make(chan int)
			go func() {
				n := 0
				for {
					select {
					case <-stop:
						writerDone <- n
						return
					default:
					}
					n++
					id := fmt.Sprint(n)
					err := inTx(ctx, s, func(ctx context.Context) error {
						for _, k := range []store.Kind{store.KindAccessToken, store.KindRefreshToken} {
							if err := s.CreateGrant(ctx, benchRecord(k, "w-"+id, id)); err != nil {
								return err
							}
						}
						return nil
					})
					if err != nil {
						b.Error(err)
					}
				}
			}()
			b.ResetTimer()
			runParallel(b, 16, func() {
				if _, err := s.Grant(ctx, store.KindAccessToken, "at-read"); err != nil {
					b.Error(err)
				}
				if _, err := s.Client(ctx, "app"); err != nil {
					b.Error(err)
				}
				if _, err := s.User(ctx, "alice"); err != nil {
					b.Error(err)
				}
			})
			b.StopTimer()
			close(stop)
			writes := <-writerDone
			secs := b.Elapsed().Seconds()
			b.ReportMetric(3*float64(b.N)/secs, "reads/s") // three per op
			b.ReportMetric(float64(writes)/secs, "writes/s")
		})
	}
}

// runParallel runs f b.N times from par goroutines (at least GOMAXPROCS).
func runParallel(b *testing.B, par int, f func()) {
	b.SetParallelism(max(1, par/testingProcs()))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			f()
		}
	})
}

// addBenchClient registers the client of the benchmarks.
func addBenchClient(b *testing.B, s *sqlstore.Store) {
	if err := s.AddClient(b.Context(), &store.Client{ID: "app", RedirectURIs: []string{"http://127.0.0.1/cb"}}); err != nil {
		b.Fatal(err)
	}
}

// benchData is about the size of a grant record's data (fosite's request
// and session, as JSON).
var benchData = make([]byte, 1200)

// benchRecord is a grant record of the flow id.
func benchRecord(kind store.Kind, sig, id string) *store.Grant {
	return &store.Grant{Kind: kind, Signature: sig, RequestID: "req-" + id, ClientID: "app", Subject: "alice",
		ExpiresAt: time.Now().Add(time.Hour), Data: benchData}
}

// flowCalls makes the store calls of one flow, with signatures made from id.
func flowCalls(ctx context.Context, s *sqlstore.Store, id string) error {
	code, at, rt := "code-"+id, "at-"+id, "rt-"+id
	// Authorize: the client, the session, the three records of the code.
	if _, err := s.Client(ctx, "app"); err != nil {
		return err
	}
	if _, err := s.Session(ctx, "sid-"+id); err == nil {
		return fmt.Errorf("session: want not found")
	}
	err := inTx(ctx, s, func(ctx context.Context) error {
		for _, k := range []store.Kind{store.KindAuthorizeCode, store.KindPKCE, store.KindOIDC} {
			if err := s.CreateGrant(ctx, benchRecord(k, code, id)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Token: the client outside, the rest in the transaction.
	if _, err := s.Client(ctx, "app"); err != nil {
		return err
	}
	err = inTx(ctx, s, func(ctx context.Context) error {
		for _, k := range []store.Kind{store.KindAuthorizeCode, store.KindPKCE} {
			if _, err := s.Grant(ctx, k, code); err != nil {
				return err
			}
		}
		if err := s.Consume(ctx, store.KindAuthorizeCode, code); err != nil {
			return err
		}
		if err := s.Delete(ctx, store.KindPKCE, code); err != nil {
			return err
		}
		if err := s.CreateGrant(ctx, benchRecord(store.KindAccessToken, at, id)); err != nil {
			return err
		}
		if err := s.CreateGrant(ctx, benchRecord(store.KindRefreshToken, rt, id)); err != nil {
			return err
		}
		if _, err := s.Grant(ctx, store.KindOIDC, code); err != nil {
			return err
		}
		return s.Delete(ctx, store.KindOIDC, code)
	})
	if err != nil {
		return err
	}
	// A use of the access token.
	_, err = s.Grant(ctx, store.KindAccessToken, at)
	return err
}

// inTx runs f in a transaction of s, committing it if f succeeds.
func inTx(ctx context.Context, s *sqlstore.Store, f func(context.Context) error) error {
	txCtx, err := s.BeginTx(ctx)
	if err != nil {
		return err
	}
	if err := f(txCtx); err != nil {
		_ = s.Rollback(txCtx)
		return err
	}
	return s.Commit(txCtx)
}

// testingProcs is the GOMAXPROCS RunParallel multiplies SetParallelism by.
func testingProcs() int { return runtime.GOMAXPROCS(0) }

// BenchmarkTokenFlow makes, per iteration, the store calls one
// authorization-code flow makes through package provider today, with the
// app's clients in memory as example/server has them: GET /authorize reads
// the login session and stores the code's one record outside any
// transaction; POST /oauth/token reads the code back, reads the user's
// profile for the ID token, and applies its writes (consume the code, store
// the access and refresh tokens) with one [sqlstore.Store.ApplyGrants]. Each
// flow's calls carry a context that can be canceled, as an HTTP request's
// does. "parallel=16" runs it from 16 goroutines, as the 16 clients of
// ../shared/bench/side-by-side do. Besides flows/s it reports the CPU time
// the process spent per flow (cpu-µs/op), which is what a busy server's
// throughput is made of. Run:
//
//	go test -run '^$' -bench TokenFlow -count 6 ./store/sqlstore/sqlite/
func BenchmarkTokenFlow(b *testing.B) {
	for _, par := range []int{0, 16} {
		name := "sequential"
		if par > 0 {
			name = fmt.Sprintf("parallel=%d", par)
		}
		b.Run(name, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "pixie.db")
			s, err := sqlite.Open(b.Context(), path, sqlstore.Config{KeySecret: benchSecret})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = s.Close() })
			if err := s.AddUser(b.Context(), &store.User{Subject: "alice", Name: "Alice"}, "alice", "pw"); err != nil {
				b.Fatal(err)
			}
			sess := &store.Session{ID: "sid", Subject: "alice", AuthTime: time.Now(), CreatedAt: time.Now(),
				ExpiresAt: time.Now().Add(time.Hour), LastUsed: time.Now()}
			if err := s.CreateSession(b.Context(), sess); err != nil {
				b.Fatal(err)
			}
			var n atomic.Int64
			flow := func() {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				if err := tokenFlowCalls(ctx, s.Store, fmt.Sprint(n.Add(1))); err != nil {
					b.Error(err)
				}
			}
			b.ReportAllocs()
			cpu0 := processCPU(b)
			b.ResetTimer()
			if par == 0 {
				for b.Loop() {
					flow()
				}
			} else {
				runParallel(b, par, flow)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "flows/s")
			b.ReportMetric(float64((processCPU(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/op")
			if fi, err := os.Stat(path + "-wal"); err == nil {
				b.ReportMetric(float64(fi.Size())/(1<<20), "wal-MiB")
			}
		})
	}
}

// tokenFlowCalls makes the store calls of one flow as BenchmarkTokenFlow
// describes them, with signatures made from id.
func tokenFlowCalls(ctx context.Context, s *sqlstore.Store, id string) error {
	code := "code-" + id
	if _, err := s.Session(ctx, "sid"); err != nil {
		return err
	}
	if err := s.CreateGrant(ctx, benchRecord(store.KindAuthorizeCode, code, id)); err != nil {
		return err
	}
	if _, err := s.Grant(ctx, store.KindAuthorizeCode, code); err != nil {
		return err
	}
	if _, err := s.User(ctx, "alice"); err != nil {
		return err
	}
	return s.ApplyGrants(ctx, &store.GrantBatch{
		Consume: []store.GrantKey{{Kind: store.KindAuthorizeCode, Signature: code}},
		Create: []*store.Grant{benchRecord(store.KindAccessToken, "at-"+id, id),
			benchRecord(store.KindRefreshToken, "rt-"+id, id)},
	})
}
