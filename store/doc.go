// Package store declares the storage pixie consumes: small interfaces for
// clients, users, grants and signing keys, the record types they exchange, and
// the sentinel errors of their contracts.
//
// A backend implements some or all of [Clients], [Users], [Grants] and [Keys]
// (ten methods in all). Most teams keep pixie's backend for clients, grants
// and keys and implement only [Users] (two methods) over the user database
// they already have.
//
// The contracts are pinned by the conformance suite in
// [github.com/pixieauth/pixie/store/storetest]; run it against a custom
// backend:
//
//	func TestMyStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) storetest.Stores {
//			s := mystore.New(...)
//			return storetest.Stores{Clients: s, Users: s, Grants: s, Keys: s,
//				AddClient: s.AddClient, AddUser: s.AddUser}
//		})
//	}
//
// Package handlers consumes three more: [Consents], [Throttle] and
// [Sessions] (the login sessions' records).
//
// Nothing here depends on fosite: the adapter from fosite's storage calls onto
// these interfaces lives in package provider.
package store
