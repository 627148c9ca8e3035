"""The database, its types and group commits, the key store, files on disk."""
