"""Audit: every access recorded as a BALP AuditEvent in a hash-chained, append-only log."""
