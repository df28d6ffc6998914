"""Real servers for tests, started on loopback by the tests themselves (PostgreSQL, Redis)."""
