"""Storage behind repositories: SQLite (WAL) embedded, PostgreSQL in production."""
