"""Pacing (runner/pacing): the limiters on the real clock, and reaching the API's limit."""
