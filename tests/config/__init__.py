"""Settings (runner/config): precedence, sources, the config file, the API key."""
