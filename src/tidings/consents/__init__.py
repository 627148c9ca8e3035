"""Consent records (CON-1): append-only events of a person's consent to be messaged, by
channel and purpose, with their proof; the state in force is derived from them
([docs/consents.md](../../../docs/consents.md))."""
