package handlers_test

import (
	"context"
	"log/slog"
	"net"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver, for the admin connection

	"github.com/pixieauth/pixie/handlers"
	"github.com/pixieauth/pixie/internal/pgtest"
	"github.com/pixieauth/pixie/provider"
	"github.com/pixieauth/pixie/store"
	"github.com/pixieauth/pixie/store/sqlstore"
	"github.com/pixieauth/pixie/store/sqlstore/postgres"
)

// Helpers for the tests on the SQL stores (a fresh PostgreSQL schema per
// test comes from internal/pgtest): the demo registrations, a server on a SQL store, and a TCP proxy
// that plays a database going away and coming back.

// testKeySecret is the key-encryption secret of every SQL store in these
// tests: replicas of one deployment share it.
var testKeySecret = []byte("pixie handlers tests: key-encryption secret, 32+ bytes")

// postgresAddr returns the network and address the DSN connects to.
func postgresAddr(t testing.TB, dsn string) (network, addr string) {
	t.Helper()
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatalf("parse %s: %v", pgtest.DSNEnv, err)
	}
	port := strconv.Itoa(int(cfg.Port))
	if strings.HasPrefix(cfg.Host, "/") { // a Unix socket directory
		return "unix", filepath.Join(cfg.Host, ".s.PGSQL."+port)
	}
	return "tcp", net.JoinHostPort(cfg.Host, port)
}

// seedStore registers the demo user alice and the demo's native client, as
// example/server does, in a SQL store.
func seedStore(t testing.TB, st *sqlstore.Store) {
	t.Helper()
	ctx := t.Context()
	if err := st.AddUser(ctx, &store.User{
		Subject:           "alice",
		PreferredUsername: aliceUsername,
		Name:              aliceName,
		GivenName:         "Alice",
		FamilyName:        "Example",
		Email:             aliceEmail,
		EmailVerified:     true,
	}, aliceUsername, alicePassword); err != nil {
		t.Fatalf("add user: %v", err)
	}
	if err := st.AddClient(ctx, &store.Client{
		ID: nativeClient, Name: "Example App",
		RedirectURIs: []string{loopbackURI, customSchemeURI},
		Scopes:       strings.Fields(allScopes),
		Native:       true, FirstParty: true,
	}); err != nil {
		t.Fatalf("add client: %v", err)
	}
}

// startSQLServer starts pixie on a SQL store behind a real HTTP server whose
// URL is the issuer, closed when t ends. grants, if not nil, replaces st as
// the grant store. Expired-grant cleanup is off, so that no background
// goroutine touches the database at a moment the test does not choose.
// configure, if given, changes the provider's and the handlers' Config
// before New.
func startSQLServer(t *testing.T, st *sqlstore.Store, grants store.Grants, logger *slog.Logger, configure ...func(*provider.Config, *handlers.Config)) *testServer {
	t.Helper()
	if grants == nil {
		grants = st
	}
	srv := httptest.NewUnstartedServer(nil)
	issuer := "http://" + srv.Listener.Addr().String()
	cfg := provider.Config{
		Issuer:  issuer,
		Clients: st, Users: st, Grants: grants, Keys: st,
		CleanupInterval: -1,
		Logger:          logger,
	}
	var hcfg handlers.Config
	for _, f := range configure {
		f(&cfg, &hcfg)
	}
	p, err := provider.New(t.Context(), cfg)
	if err != nil {
		srv.Close()
		t.Fatalf("provider.New: %v", err)
	}
	hcfg.Sessions = st
	h, err := handlers.New(p, hcfg)
	if err != nil {
		srv.Close()
		t.Fatalf("handlers.New: %v", err)
	}
	srv.Config.Handler = h
	srv.Start()
	t.Cleanup(srv.Close)
	return &testServer{URL: issuer, Server: srv, Provider: p}
}

// testLogger returns a logger writing every level as text into a buffer,
// which is printed if t fails.
func testLogger(t *testing.T, name string) (*slog.Logger, *syncBuffer) {
	t.Helper()
	buf := &syncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log of %s:\n%s", name, buf.String())
		}
	})
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// tcpProxy forwards TCP connections to a database server. Stopping it is the
// database going away as the network sees it: new connections are refused
// and open ones are cut. Restoring it listens again on the same port.
// Hanging it is a database that stops answering: connections are still
// accepted, but nothing is forwarded on any of them, old or new, until the
// hang ends.
type tcpProxy struct {
	network, target string // where connections are forwarded
	addr            string // where the proxy listens: 127.0.0.1:port

	mu    sync.Mutex
	ln    net.Listener // nil while stopped
	conns map[net.Conn]struct{}
	hung  chan struct{}  // not nil while hung; closed when the hang ends
	wg    sync.WaitGroup // the accept loop and the copying goroutines
	// running counts the proxy's goroutines, which tests subtract from
	// runtime.NumGoroutine to count the server's.
	running atomic.Int64
}

// startTCPProxy starts a proxy to target on a free port of 127.0.0.1,
// stopped when t ends.
func startTCPProxy(t *testing.T, network, target string) *tcpProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{network: network, target: target, addr: ln.Addr().String(), conns: map[net.Conn]struct{}{}}
	p.serve(ln)
	t.Cleanup(p.stop)
	return p
}

func (p *tcpProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	p.running.Add(1)
	go func() {
		defer p.running.Add(-1)
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return // closed by stop
			}
			p.wg.Add(1)
			p.running.Add(1)
			go func() {
				defer p.running.Add(-1)
				defer p.wg.Done()
				p.forward(c)
			}()
		}
	}()
}

// forward connects c to the target and copies both ways until either side
// closes or the proxy stops.
func (p *tcpProxy) forward(c net.Conn) {
	up, err := net.DialTimeout(p.network, p.target, 5*time.Second)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	if p.ln == nil { // stopped meanwhile
		p.mu.Unlock()
		c.Close()
		up.Close()
		return
	}
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	p.mu.Unlock()
	var copying sync.WaitGroup
	for _, pair := range [][2]net.Conn{{up, c}, {c, up}} {
		p.running.Add(1)
		copying.Go(func() {
			defer p.running.Add(-1)
			p.copy(pair[0], pair[1])
			// Either direction ending ends the connection, both halves.
			pair[0].Close()
			pair[1].Close()
		})
	}
	copying.Wait()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}

// copy copies src to dst until either fails, holding what it reads while
// the proxy hangs; a hang's end cuts the connection.
func (p *tcpProxy) copy(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			hung := p.hung
			p.mu.Unlock()
			if hung != nil {
				<-hung
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// hang makes the database stop answering: see tcpProxy.
func (p *tcpProxy) hang() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.hung == nil {
		p.hung = make(chan struct{})
	}
}

// endHang ends a hang as a database restart does: every open connection is
// cut (their clients gave up on them), and new ones are forwarded again.
func (p *tcpProxy) endHang() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.hung != nil {
		close(p.hung)
		p.hung = nil
	}
	for c := range p.conns {
		c.Close()
	}
}

// stop closes the listener and cuts every open connection, ending a hang,
// and returns once the proxy's goroutines have ended. Stopping a stopped
// proxy does nothing.
func (p *tcpProxy) stop() {
	p.mu.Lock()
	if p.hung != nil {
		close(p.hung)
		p.hung = nil
	}
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// restore listens again on the proxy's port.
func (p *tcpProxy) restore(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		t.Fatalf("proxy: listen again on %s: %v", p.addr, err)
	}
	p.serve(ln)
}

// outageAfterConsume is a SQL store that can be made to cut the database
// connection in the middle of a token exchange. Armed for a kind, the next
// exchange consuming a record of that kind meets a real outage: with
// store.Batcher (how the provider writes an exchange), when its batch is
// applied, after fosite's handlers have made and signed the tokens; through
// a transaction, right after its Consume succeeded, so that the rest of the
// transaction meets the outage. Everything else is the store's own.
type outageAfterConsume struct {
	*sqlstore.Store

	mu   sync.Mutex
	kind store.Kind
	cut  func()
}

// arm makes the next exchange consuming a record of kind run cut.
func (o *outageAfterConsume) arm(kind store.Kind, cut func()) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.kind, o.cut = kind, cut
}

// fire runs and disarms cut if armed for kind.
func (o *outageAfterConsume) fire(kind store.Kind) {
	o.mu.Lock()
	var cut func()
	if kind == o.kind {
		cut, o.kind, o.cut = o.cut, "", nil
	}
	o.mu.Unlock()
	if cut != nil {
		cut()
	}
}

func (o *outageAfterConsume) Consume(ctx context.Context, kind store.Kind, signature string) error {
	err := o.Store.Consume(ctx, kind, signature)
	if err == nil {
		o.fire(kind)
	}
	return err
}

func (o *outageAfterConsume) ApplyGrants(ctx context.Context, b *store.GrantBatch) error {
	for _, k := range b.Consume {
		o.fire(k.Kind)
	}
	return o.Store.ApplyGrants(ctx, b)
}

// Compile-time checks: the wrapper is still a transactional grant store.
var (
	_ store.Grants     = (*outageAfterConsume)(nil)
	_ store.Transactor = (*outageAfterConsume)(nil)
	_ store.Batcher    = (*outageAfterConsume)(nil)
)

// proxiedPostgres opens pixie's PostgreSQL store on a fresh schema through
// a TCP proxy the test stops and restores: the database going away and
// coming back, as a server sees it. connect_timeout bounds the dials
// database/sql makes on its own goroutine, with no request's context. The
// store is closed when t ends.
func proxiedPostgres(t *testing.T) (*postgres.Store, *tcpProxy) {
	t.Helper()
	dsn := pgtest.FreshSchema(t)
	network, target := postgresAddr(t, dsn)
	proxy := startTCPProxy(t, network, target)
	st, err := postgres.Open(t.Context(), pgtest.With(t, dsn, map[string]string{"host": proxy.addr, "connect_timeout": "2"}),
		sqlstore.Config{KeySecret: testKeySecret})
	if err != nil {
		t.Fatalf("postgres.Open: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st, proxy
}
