"""Pacing: the run's limiter (even spacing under --rpm, one shared 429 pause, a rate learned
from the headers) and the per-store limiter with its test of which 429s are a store's.

May import: the core modules only (items, attributes, errors).
"""
