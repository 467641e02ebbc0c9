"""The request layer (runner/requests): the HTTP client against a real sandbox."""
