"""The result log (runner/log): writing, reading, the lock, resuming from any valid form."""
