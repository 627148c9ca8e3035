"""Tidings' own SMPP server: clients bind with per-account credentials and submit like the API."""
