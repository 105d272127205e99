package sqlite_test

import (
	"testing"

	"github.com/pixieauth/pixie/store/sqlstore/internal/sqlstoretest"
)

// BenchmarkApplyGrants compares a refresh-token exchange's writes in a
// transaction and in one ApplyGrants (itself a transaction on SQLite).
// Run:
//
//	go test -run '^$' -bench ApplyGrants ./store/sqlstore/sqlite/
func BenchmarkApplyGrants(b *testing.B) {
	sqlstoretest.BenchBatch(b, backend)
}
