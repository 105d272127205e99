package memory

// SetMaxSessions lowers the bound on login-session records, so that a test
// can reach it.
func SetMaxSessions(s *Store, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sessions.max = n
}

// SetMaxGrants lowers the bound on grant records, so that a test can reach
// it.
func SetMaxGrants(s *Store, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maxGrants = n
}
