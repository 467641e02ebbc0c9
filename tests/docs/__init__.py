"""The README, checked against the code."""
