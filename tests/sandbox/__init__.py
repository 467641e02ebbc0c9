"""The sandbox itself (runner/sandbox), one file a subject, over real loopback HTTP."""
