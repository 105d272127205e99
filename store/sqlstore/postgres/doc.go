// Package postgres opens pixie's SQL store, package
// [github.com/pixieauth/pixie/store/sqlstore], on PostgreSQL through pgx's
// database/sql driver (github.com/jackc/pgx/v5/stdlib). It is the store for
// several replicas behind a load balancer: they share clients, grants and
// signing keys, and any replica can serve any step of any flow.
//
//	s, err := postgres.Open(ctx, "postgres://pixie@db.internal:5432/pixie?sslmode=verify-full",
//		sqlstore.Config{KeySecret: keySecret}) // the same secret on every replica
//	if err != nil {
//		return err
//	}
//	defer s.Close()
//	s.DB().SetMaxOpenConns(20) // within the server's max_connections
//
// The returned [Store] embeds *sqlstore.Store, so it implements every
// storage interface of package store, and closes the pool on [Store.Close].
//
// Open applies the schema migrations (listed in package sqlstore) in one
// transaction under pg_advisory_xact_lock, so replicas may start at the
// same time. Single use is enforced by the database (UPDATE … WHERE … AND
// active), so of concurrent redemptions of one code on several replicas
// exactly one wins. To keep pixie's tables apart from an application's,
// give pixie a schema of its own (search_path=pixie in the DSN, after
// CREATE SCHEMA pixie) or set [sqlstore.Config.TablePrefix].
//
// Statements are prepared on each connection (server-side prepared
// statements). Behind PgBouncer, use session pooling, or transaction
// pooling with PgBouncer 1.21 or later and max_prepared_statements set.
package postgres
