"""Hub storage: SQLAlchemy 2 models and keyword-only query modules, on SQLite or PostgreSQL."""
