"""Alembic migrations; run at start by ``tidings.migrations.run.upgrade``."""
