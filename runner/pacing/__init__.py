"""Pacing: the run's limiter (even spacing under --rpm, one shared 429 pause, a rate learned
from the headers), the slots it leaves for requests that can wait (uploads, file deletes), and
the per-store limiter with its test of which 429s are a store's.

May import: the core modules only (items, attributes, errors).
"""
