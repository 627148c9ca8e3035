"""The built-in sandbox carrier: a carrier that behaves like a real one, for development,
tests and benchmarks, with its own durable ledger (see ``carrier`` for the magic numbers)."""
