"""What every layer may use: time, ids, settings, logs, request ids."""
