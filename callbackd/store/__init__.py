"""Persistence: ORM models, engine and sessions, migrations, the SQLite writer, webhook receipts, the audit trail
and atomic file writes."""
