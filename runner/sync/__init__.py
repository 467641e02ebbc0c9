"""sync's core: list every store the manifest names, plan each store (what to add, update,
check and detach), execute the plan through the run's engine, and report (SPEC "sync").

  execute.py  one sync run: list, plan, then the phases -> SyncResult
  listing.py  the listing step (signals, --max-runtime) and the listings' refusal test
  store.py    a store's two sides: the manifest's pairs for it, what its listing showed
  plan.py     the sets per store (add, update, check, detach) made from them; StorePlan
  phases.py   A: checks, updates, adds; B: the guard, then the detaches; C: a full store's
              refused adds again
  result.py   what the phases did to a store
  report.py   formatting only: exit code, --json fields, text lines, the dry run's plan

May import: run, operations, requests, pacing, log, manifest, config and the core modules
(items, attributes, errors, console). Never commands (runner/commands/sync.py is the front).
"""
