"""attach-runner's tests: one folder a package of runner/, helpers shared from cli.py and
conftest.py (tests/README.md says what goes where)."""
