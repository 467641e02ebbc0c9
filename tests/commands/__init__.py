"""The command line itself, end to end: bad input, secrets, output and help, fuzzed command
lines, the demo."""
