"""Message encoding, addressing and related pure helpers."""
