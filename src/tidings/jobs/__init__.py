"""The outbox of jobs, the workers that run them, and the wake-ups between processes."""
