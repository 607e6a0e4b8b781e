"""Every way a person looks in: the HTTP API (and, later, the dashboard)."""
