"""The broker's own state in SQLAlchemy: SQLite by default, PostgreSQL for replicas."""
