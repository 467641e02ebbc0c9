"""The result log: the writer (append-only JSON Lines, 0600, torn-tail safe), the reader, the
resume index built from it, and the lock that keeps one run per log. The log's line format
lives here and nowhere else.

May import: the core modules only (items, attributes, errors).
"""
