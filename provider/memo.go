package provider

import (
	"context"
	"sync"

	"github.com/pixieauth/pixie/store"
)

// memo remembers, for the length of one request, what the storage adapter
// read: fosite asks for the client once per record it reads and for the
// authorization code twice, and each ask would be a database round trip.
// Records are decoded afresh on every read, so fosite still gets a copy of
// its own to mutate; the compare-and-set that consumes a code goes to the
// store, whatever the memo holds.
type memo struct {
	mu sync.Mutex
	// client is the client read first, and clients any other: a request
	// reads one client, so the map is seldom made.
	client1  *store.Client
	clients  map[string]*store.Client
	lastCode *store.Grant   // the authorization code record read last
	bundle   bool           // lastCode carries its PKCE and OIDC requests
	lastHead *storedRequest // lastCode's request, decoded
	// decoded is the session lastCode's was decoded into last: fosite
	// passes the same one back for the code's later reads, which then need
	// no decoding again.
	decoded any
}

type memoKey struct{}

// withMemo returns ctx carrying a fresh memo for one request.
func withMemo(ctx context.Context) context.Context {
	return context.WithValue(ctx, memoKey{}, &memo{})
}

// memoFrom returns the request's memo, or nil; a nil memo remembers nothing.
func memoFrom(ctx context.Context) *memo {
	m, _ := ctx.Value(memoKey{}).(*memo)
	return m
}

func (m *memo) client(id string) *store.Client {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.client1 != nil && m.client1.ID == id {
		return m.client1
	}
	return m.clients[id]
}

func (m *memo) setClient(c *store.Client) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.client1 == nil || m.client1.ID == c.ID:
		m.client1 = c
	case m.clients == nil:
		m.clients = map[string]*store.Client{c.ID: c}
	default:
		m.clients[c.ID] = c
	}
}

// code returns the remembered record if it is the authorization code asked
// for; only codes are remembered (fosite reads them twice per exchange).
func (m *memo) code(kind store.Kind, signature string) *store.Grant {
	if m == nil || kind != store.KindAuthorizeCode {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.lastCode != nil && m.lastCode.Signature == signature {
		return m.lastCode
	}
	return nil
}

func (m *memo) setCode(kind store.Kind, g *store.Grant, head *storedRequest) {
	if m == nil || kind != store.KindAuthorizeCode {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	h := head.clone()
	m.lastCode, m.bundle, m.lastHead, m.decoded = g, head.Bundle, &h, nil
}

// head returns the decoded request of the remembered code record with that
// signature, or nil. The caller must not modify it.
func (m *memo) head(kind store.Kind, signature string) *storedRequest {
	if m == nil || kind != store.KindAuthorizeCode {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.lastCode != nil && m.lastCode.Signature == signature {
		return m.lastHead
	}
	return nil
}

// bundled reports whether the remembered code record is the one with that
// signature and carries its PKCE and OIDC requests.
func (m *memo) bundled(signature string) bool {
	if m == nil {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lastCode != nil && m.lastCode.Signature == signature && m.bundle
}

// decodedInto reports whether the remembered code record with that
// signature was decoded into sess already, and otherwise records that it
// is about to be.
func (m *memo) decodedInto(signature string, sess any) bool {
	if m == nil {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.lastCode == nil || m.lastCode.Signature != signature {
		return false
	}
	if m.decoded == sess {
		return true
	}
	m.decoded = sess
	return false
}
