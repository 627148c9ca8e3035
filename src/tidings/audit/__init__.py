"""The tamper-evident audit trail of every write of personal data."""
