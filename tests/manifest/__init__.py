"""Manifests (runner/manifest): formats, options, which target, the fast paths."""
