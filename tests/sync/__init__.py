"""`sync` (runner/sync): plan, phases and report, judged by the sandbox's record."""
