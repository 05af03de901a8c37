"""Storage: the schema (db), migrations, the audit log, stored reports, the fleet queries (queries) and the
raw-driver statements of the intake hot path (rawsql). Imports nothing else of the server but errors/util/settings."""
