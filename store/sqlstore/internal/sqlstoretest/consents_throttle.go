package sqlstoretest

import (
	"database/sql"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pixieauth/pixie/store"
	"github.com/pixieauth/pixie/store/sqlstore"
	"github.com/pixieauth/pixie/store/storetest"
)

// ---- migrations from an older schema ----

// undo holds, for each schema version after the first, the statements that
// take a database back to the version before it.
var undo = map[int][]string{
	2: {`ALTER TABLE clients DROP COLUMN apis`},
	3: {`DROP TABLE throttle`, `DROP TABLE consents`},
	4: {`ALTER TABLE clients DROP COLUMN post_logout_redirect_uris`},
	5: {`DROP TABLE consents`, `CREATE TABLE consents (subject TEXT NOT NULL, client_id TEXT NOT NULL,
scopes TEXT NOT NULL DEFAULT '[]', updated_at BIGINT NOT NULL, PRIMARY KEY (subject, client_id))`},
	6: {`ALTER TABLE throttle RENAME COLUMN last_at TO window_start`},
	7: {`DROP TABLE sessions`},
	8: {
		`ALTER TABLE users DROP COLUMN address_formatted`, `ALTER TABLE users DROP COLUMN address_street`,
		`ALTER TABLE users DROP COLUMN address_locality`, `ALTER TABLE users DROP COLUMN address_region`,
		`ALTER TABLE users DROP COLUMN address_postal_code`, `ALTER TABLE users DROP COLUMN address_country`,
		`ALTER TABLE users DROP COLUMN phone_number`, `ALTER TABLE users DROP COLUMN phone_number_verified`,
	},
	9:  {`DROP INDEX grants_active_request_idx`},
	10: {`CREATE INDEX grants_request_idx ON grants (kind, request_id)`},
	11: {`ALTER TABLE clients DROP COLUMN require_par`},
	12: {`ALTER TABLE clients DROP COLUMN require_dpop`},
}

// schemaVersions returns the schema versions the tests know of, in order:
// 1 and those of undo. Versions need not be consecutive (numbers are
// handed out ahead of the changes that use them).
func schemaVersions() []int {
	vs := []int{1}
	for v := range undo {
		vs = append(vs, v)
	}
	slices.Sort(vs)
	return vs
}

// downgrade turns db, migrated to the latest version, into the database
// that a pixie of schema version v left: it undoes the later migrations and
// removes them from the migrations table.
func downgrade(t *testing.T, b Backend, db *sql.DB, v int) {
	t.Helper()
	ctx := t.Context()
	vs := schemaVersions()
	for i := len(vs) - 1; i >= 0 && vs[i] > v; i-- {
		n := vs[i]
		for _, stmt := range undo[n] {
			if _, err := db.ExecContext(ctx, stmt); err != nil {
				t.Fatalf("undo version %d: %s: %v", n, stmt, err)
			}
		}
		if _, err := db.ExecContext(ctx, b.q(`DELETE FROM pixie_migrations WHERE version = ?`), n); err != nil {
			t.Fatalf("undo version %d: %v", n, err)
		}
	}
	want := slices.DeleteFunc(vs, func(n int) bool { return n > v })
	if got := migrationRows(t, db, "pixie_migrations"); !slices.Equal(got, want) {
		t.Fatalf("after downgrade: got migration versions %v, want %v", got, want)
	}
}

// wantLatest checks that every migration is recorded, once.
func wantLatest(t *testing.T, db *sql.DB) {
	t.Helper()
	want := schemaVersions()
	if got := migrationRows(t, db, "pixie_migrations"); !slices.Equal(got, want) {
		t.Errorf("got migration versions %v, want %v", got, want)
	}
}

// testMigrateFromOlder opens stores on databases left by older versions of
// the schema, holding data, alone and as several replicas at once: New
// applies the missing migrations once, keeps the data, and every interface
// works.
func testMigrateFromOlder(t *testing.T, b Backend) {
	tests := []struct {
		name     string
		version  int // the schema version the database is left at
		replicas int // how many stores open it at once
	}{
		{"FromV1", 1, 1},
		{"FromV2", 2, 1},
		{"FromV4", 4, 1},
		{"FromV1Concurrent", 1, 8},
		{"FromV2Concurrent", 2, 8},
		{"FromV4Concurrent", 4, 8},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			o := b.NewDatabase(t)
			old, db := open(t, o, b.Config())
			k, _ := ecKey(t, "kid-1")
			mustOK(t, old.AddKey(ctx, k))
			mustOK(t, old.CreateGrant(ctx, newGrant(store.KindRefreshToken, "rt-1", "req-1")))
			downgrade(t, b, db, tc.version)
			// A client registered by the older pixie, with its columns only.
			_, err := db.ExecContext(ctx, b.q(`INSERT INTO clients (id, name, scopes) VALUES (?, ?, ?)`),
				"legacy", "Legacy App", `["openid"]`)
			mustOK(t, err)
			// A consent saved by a pixie of schema 3 or 4, before consents
			// had an audience and an expiry.
			legacySaved := time.Now().Add(-time.Hour).Truncate(time.Second)
			if tc.version >= 3 {
				_, err := db.ExecContext(ctx, b.q(`INSERT INTO consents (subject, client_id, scopes, updated_at) VALUES (?, ?, ?, ?)`),
					"sub-0", "legacy", `["openid","profile"]`, legacySaved.UnixMicro())
				mustOK(t, err)
			}
			// And a user, with the columns of version 1 only.
			_, err = db.ExecContext(ctx, b.q(`INSERT INTO users (subject, username, password_hash, name) VALUES (?, ?, ?, ?)`),
				"legacy-user", "legacy", "not-a-hash", "Legacy User")
			mustOK(t, err)
			// Throttle counts of schema version 3, in a window open a minute
			// more, carry over.
			windowStart := time.Now().Add(-time.Minute).Truncate(time.Second)
			if tc.version >= 3 {
				_, err := db.ExecContext(ctx, b.q(`INSERT INTO throttle (key, count, window_start, expires_at) VALUES (?, ?, ?, ?)`),
					"old-key", 3, windowStart.UnixMicro(), windowStart.Add(2*time.Minute).UnixMicro())
				mustOK(t, err)
			}

			stores := make([]*sqlstore.Store, tc.replicas)
			errs := make([]error, tc.replicas)
			var wg sync.WaitGroup
			start := make(chan struct{})
			for i := range tc.replicas {
				wg.Go(func() {
					<-start
					stores[i], _, errs[i] = o(b.Config())
				})
			}
			close(start)
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("replica %d: New: got error %v, want nil", i, err)
				}
			}
			wantLatest(t, db)

			for i, s := range stores {
				c, err := s.Client(ctx, "legacy")
				mustOK(t, err)
				if c.Name != "Legacy App" || !slices.Equal(c.Scopes, []string{"openid"}) || c.APIs != nil {
					t.Errorf("replica %d: got client %+v, want the legacy one with no APIs", i, c)
				}
				wantActive(t, s, ctx, store.KindRefreshToken, "rt-1", true)
				u, err := s.User(ctx, "legacy-user")
				mustOK(t, err)
				if want := (store.User{Subject: "legacy-user", Name: "Legacy User"}); *u != want {
					t.Errorf("replica %d: got user %+v, want %+v (no address, no phone)", i, u, want)
				}
				keys, err := s.Keys(ctx)
				mustOK(t, err)
				if len(keys) != 1 || keys[0].ID != "kid-1" {
					t.Errorf("replica %d: got keys %+v, want kid-1", i, keys)
				}
			}
			// The legacy consent is one for no API, expiring a year after
			// it was saved.
			s, other := stores[0], stores[len(stores)-1]
			if tc.version >= 3 {
				got, err := s.Consent(ctx, "sub-0", "legacy", "")
				mustOK(t, err)
				if !slices.Equal(got.Scopes, []string{"openid", "profile"}) || !got.ExpiresAt.Equal(legacySaved.Add(365*24*time.Hour)) {
					t.Errorf("got legacy consent %+v, want [openid profile] expiring %v", got, legacySaved.Add(365*24*time.Hour))
				}
			}
			// The new tables work, and the replicas share them.
			exp := time.Now().Add(time.Hour).UTC().Truncate(time.Microsecond)
			mustOK(t, s.SaveConsent(ctx, &store.Consent{Subject: "sub-1", ClientID: "legacy", Audience: "https://api.example.com", Scopes: []string{"openid"}, ExpiresAt: exp}))
			got, err := other.Consent(ctx, "sub-1", "legacy", "https://api.example.com")
			mustOK(t, err)
			if !slices.Equal(got.Scopes, []string{"openid"}) || !got.ExpiresAt.Equal(exp) {
				t.Errorf("got consent %+v, want [openid] expiring %v", got, exp)
			}
			now := time.Now()
			if _, err := s.AddHit(ctx, "key-1", now, time.Minute); err != nil {
				t.Fatalf("AddHit: got error %v, want nil", err)
			}
			if h, err := other.AddHit(ctx, "key-1", now, time.Minute); err != nil || h.Count != 2 {
				t.Errorf("AddHit on another replica: got %+v, %v, want count 2", h, err)
			}
			if tc.version >= 3 {
				h, err := other.AddHit(ctx, "old-key", now, time.Minute)
				mustOK(t, err)
				want := store.Hits{Count: 4, Last: now, Expires: windowStart.Add(2 * time.Minute)}
				if h.Count != want.Count || !h.Last.Equal(now.Truncate(time.Microsecond)) || !h.Expires.Equal(want.Expires) {
					t.Errorf("AddHit on a key of version 3: got %+v, want %+v", h, want)
				}
			}
			sess := &store.Session{ID: "sid-1", Subject: "sub-1", CreatedAt: now, ExpiresAt: now.Add(time.Hour), LastUsed: now}
			mustOK(t, s.CreateSession(ctx, sess))
			mustOK(t, other.RevokeSessions(ctx, "sub-1"))
			if got, err := s.Session(ctx, "sid-1"); err != nil || !got.Revoked {
				t.Errorf("session revoked on another replica: got %+v, %v, want it revoked", got, err)
			}

			// Opening it again applies nothing.
			_, db2 := open(t, o, b.Config())
			wantLatest(t, db2)
		})
	}
}

// ---- throttle ----

// testThrottleTwoPools checks that replicas throttle together: events of
// one key counted through two connection pools at once each get a
// different count, 1 to n.
func testThrottleTwoPools(t *testing.T, b Backend) {
	pools := twoPools(t, b)
	ctx := t.Context()
	const n = 40
	at := time.Now()
	counts := make([]int, n)
	errs := storetest.Race(n, func(i int) error {
		h, err := pools[i%2].AddHit(ctx, "contested", at, time.Minute)
		counts[i] = h.Count
		return err
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("caller %d: got error %v, want nil", i, err)
		}
	}
	slices.Sort(counts)
	for i, c := range counts {
		if c != i+1 {
			t.Fatalf("got counts %v, want each of 1 to %d once", counts, n)
		}
	}
	for i, s := range pools {
		if got, err := s.Hits(ctx, "contested", at); err != nil || got.Count != n {
			t.Errorf("pool %d: Hits: got %+v, %v, want count %d", i, got, err, n)
		}
	}
}

// testThrottleTimes checks what storetest leaves open: times and windows
// kept to the microsecond, and times in any location.
func testThrottleTimes(t *testing.T, b Backend) {
	s, _ := fresh(t, b)
	ctx := t.Context()
	loc := time.FixedZone("UTC-3", -3*3600)
	start := time.Date(2030, 1, 2, 3, 4, 5, 123456000, loc)
	const window = 1500 * time.Microsecond
	end := start.Add(window)
	// Each call: AddHit (add) or Hits, when, and the Hits it returns.
	calls := []struct {
		add  bool
		at   time.Time
		want store.Hits
	}{
		{true, start, store.Hits{Count: 1, Last: start, Expires: end}},
		{true, end.Add(-time.Microsecond).UTC(), store.Hits{Count: 2, Last: end.Add(-time.Microsecond), Expires: end}}, // the last microsecond, in UTC
		{true, start.Add(time.Microsecond), store.Hits{Count: 3, Last: end.Add(-time.Microsecond), Expires: end}},      // Last stays the latest
		{false, end.Add(-time.Microsecond), store.Hits{Count: 3, Last: end.Add(-time.Microsecond), Expires: end}},
		{false, end, store.Hits{}},
		{true, end, store.Hits{Count: 1, Last: end, Expires: end.Add(window)}},
	}
	for i, c := range calls {
		var got store.Hits
		var err error
		if c.add {
			got, err = s.AddHit(ctx, "key-1", c.at, window)
		} else {
			got, err = s.Hits(ctx, "key-1", c.at)
		}
		mustOK(t, err)
		if got.Count != c.want.Count || !got.Last.Equal(c.want.Last) || !got.Expires.Equal(c.want.Expires) {
			t.Errorf("call %d (add: %v): got %+v, want %+v", i, c.add, got, c.want)
		}
	}
}

// testDeleteExpiredThrottle checks that DeleteExpired removes the throttle
// rows whose window ended at or before its argument, keeps the others, does
// not count them with the grants, and runs inside a transaction.
func testDeleteExpiredThrottle(t *testing.T, b Backend) {
	s, db := fresh(t, b)
	ctx := t.Context()
	cutoff := time.Now().UTC().Truncate(time.Microsecond)
	const window = 10 * time.Minute
	// Each key: when its window opens, and whether DeleteExpired(cutoff)
	// removes it.
	keys := []struct {
		key      string
		start    time.Time
		wantGone bool
	}{
		{"ended-long-ago", cutoff.Add(-24 * time.Hour), true},
		{"ended", cutoff.Add(-window - time.Microsecond), true},
		{"ends-at-cutoff", cutoff.Add(-window), true}, // [start, cutoff) has ended
		{"open", cutoff.Add(-window + time.Microsecond), false},
	}
	for _, k := range keys {
		_, err := s.AddHit(ctx, k.key, k.start, window)
		mustOK(t, err)
	}
	// A later event with a longer window does not move the end: "counted"
	// opened 20 minutes before the cutoff with a 10-minute window.
	_, err := s.AddHit(ctx, "counted", cutoff.Add(-20*time.Minute), window)
	mustOK(t, err)
	h, err := s.AddHit(ctx, "counted", cutoff.Add(-15*time.Minute), 30*time.Minute)
	mustOK(t, err)
	if h.Count != 2 {
		t.Fatalf("counted: got %+v, want count 2", h)
	}
	mustOK(t, s.CreateGrant(ctx, &store.Grant{Kind: store.KindAccessToken, Signature: "at-old", ExpiresAt: cutoff.Add(-time.Hour)}))

	rows := func() []string {
		t.Helper()
		r, err := db.QueryContext(ctx, `SELECT key FROM throttle ORDER BY key`)
		mustOK(t, err)
		defer r.Close()
		var ks []string
		for r.Next() {
			var k string
			mustOK(t, r.Scan(&k))
			ks = append(ks, k)
		}
		mustOK(t, r.Err())
		return ks
	}
	all := rows()

	tx, err := s.BeginTx(ctx)
	mustOK(t, err)
	_, err = s.DeleteExpired(tx, cutoff)
	mustOK(t, err)
	mustOK(t, s.Rollback(tx))
	if got := rows(); !slices.Equal(got, all) {
		t.Errorf("after a rolled-back DeleteExpired: got keys %q, want %q", got, all)
	}

	n, err := s.DeleteExpired(ctx, cutoff)
	mustOK(t, err)
	if n != 1 {
		t.Errorf("got %d records deleted, want 1 (the grant)", n)
	}
	var want []string
	for _, k := range keys {
		if !k.wantGone {
			want = append(want, k.key)
		}
	}
	slices.Sort(want)
	if got := rows(); !slices.Equal(got, want) {
		t.Errorf("got keys %q left, want %q", got, want)
	}
}

// ---- consents ----

// testConsentValues checks what storetest leaves open: scopes are kept in
// order, with duplicates and any characters, as a JSON array; the expiry to
// the microsecond; an empty consent reads back with nil scopes; and a
// consent saved in a transaction that rolls back is not saved.
func testConsentValues(t *testing.T, b Backend) {
	s, db := fresh(t, b)
	ctx := t.Context()
	exp := time.Now().Add(time.Hour).UTC().Truncate(time.Microsecond)
	c := &store.Consent{Subject: "sub-1", ClientID: "web", Audience: "https://api.example.com",
		Scopes: []string{"profile", "openid", "a\"b", "x\ny", "écriture", "profile"}, ExpiresAt: exp}
	mustOK(t, s.SaveConsent(ctx, c))
	got, err := s.Consent(ctx, "sub-1", "web", "https://api.example.com")
	mustOK(t, err)
	if !slices.Equal(got.Scopes, c.Scopes) || !got.ExpiresAt.Equal(exp) {
		t.Errorf("got %+v, want %+v", got, c)
	}
	var raw string
	var updated, expires int64
	mustOK(t, db.QueryRowContext(ctx, b.q(`SELECT scopes, expires_at, updated_at FROM consents WHERE subject = ? AND client_id = ? AND audience = ?`),
		"sub-1", "web", "https://api.example.com").Scan(&raw, &expires, &updated))
	if raw == "" || raw[0] != '[' {
		t.Errorf("got stored scopes %q, want a JSON array", raw)
	}
	if expires != exp.UnixMicro() {
		t.Errorf("got expires_at %d, want %d (Unix microseconds)", expires, exp.UnixMicro())
	}
	if d := time.Since(time.UnixMicro(updated)); d < 0 || d > time.Minute {
		t.Errorf("got updated_at %v, want about now", time.UnixMicro(updated))
	}

	c.Scopes = nil
	mustOK(t, s.SaveConsent(ctx, c))
	got, err = s.Consent(ctx, "sub-1", "web", "https://api.example.com")
	mustOK(t, err)
	if got.Scopes != nil {
		t.Errorf("after saving none: got scopes %q, want nil", got.Scopes)
	}

	tx, err := s.BeginTx(ctx)
	mustOK(t, err)
	mustOK(t, s.SaveConsent(tx, &store.Consent{Subject: "sub-2", ClientID: "web", Scopes: []string{"openid"}, ExpiresAt: exp}))
	got, err = s.Consent(tx, "sub-2", "web", "")
	mustOK(t, err)
	if !slices.Equal(got.Scopes, []string{"openid"}) {
		t.Errorf("inside the transaction: got scopes %q, want [openid]", got.Scopes)
	}
	mustOK(t, s.Rollback(tx))
	if got, err := s.Consent(ctx, "sub-2", "web", ""); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after rollback: got %+v, %v, want ErrNotFound", got, err)
	}
}

// testDeleteExpiredConsents checks that DeleteExpired removes the consents
// that expired before its argument, and only those.
func testDeleteExpiredConsents(t *testing.T, b Backend) {
	s, _ := fresh(t, b)
	ctx := t.Context()
	cutoff := time.Now().UTC().Truncate(time.Microsecond)
	consents := []struct {
		subject  string
		expires  time.Time
		wantGone bool
	}{
		{"long-ago", cutoff.Add(-24 * time.Hour), true},
		{"just-before", cutoff.Add(-time.Microsecond), true},
		{"at-cutoff", cutoff, false}, // not before the cutoff
		{"later", cutoff.Add(time.Hour), false},
	}
	for _, c := range consents {
		mustOK(t, s.SaveConsent(ctx, &store.Consent{Subject: c.subject, ClientID: "web", ExpiresAt: c.expires}))
	}
	_, err := s.DeleteExpired(ctx, cutoff)
	mustOK(t, err)
	for _, c := range consents {
		_, err := s.Consent(ctx, c.subject, "web", "")
		if gone := errors.Is(err, store.ErrNotFound); gone != c.wantGone || err != nil && !gone {
			t.Errorf("%s: got %v, want gone %v", c.subject, err, c.wantGone)
		}
	}
}
