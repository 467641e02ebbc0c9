"""`attach-runner failed MANIFEST`: the pairs the log shows failed, as a CSV manifest that `run`
takes back (with each pair's `op`, and its attributes and chunking when the manifest gives
them). Reads only the manifest and the log: no key, no request."""


from __future__ import annotations

import csv
import json
from typing import Any

from runner.commands.common import load_index, manifest_items, prepare
from runner.commands.status import error_text
from runner.config import Settings
from runner.console import Io
from runner.errors import EXIT_OK
from runner.log.states import Plan, State


def failed(settings: Settings, io: Io) -> int:
    """The failed pairs of the manifest as CSV (extra columns are ignored when fed back); on
    vector stores with each pair's options, as JSON cells, so the output reads back as a
    manifest with the same options."""
    target, source, stats = prepare(settings, io)
    index = load_index(settings, target, io)
    writer = csv.writer(io.out, lineterminator="\n")
    with_options = target.supports_batches  # vector stores: the target with per-file options
    option_columns = ["attributes", "chunking_strategy"] if with_options else []
    # `op`: what the failed pair's last request did; `run` refuses a row whose op is detach
    # (SPEC), so this CSV never feeds `run` a pair to take out.
    # `path`, for a manifest with path rows: a local file's absolute path (its file_id
    # empty), so the rows read back as path rows wherever the manifest stood (SPEC:
    # `failed` writes each file's path).
    paths = with_options and stats.first_path_line is not None
    path_column = ["path"] if paths else []
    writer.writerow([target.owner_column, "file_id", *path_column, "status", "code", "message",
                     "retryable", *option_columns, "op"])
    for item in manifest_items(source, target)():
        if item.local is not None:
            item = index.uploads.resolve(item, racy=True)
        plan, raw = index.plan(item, retry_failed=False)
        if plan is Plan.DUPLICATE or raw not in (State.FAILED_RETRYABLE, State.FAILED_UNCERTAIN,
                                                 State.REFUSED):
            continue
        info = index.failed_info(item)
        err = info.error if info and info.error else {}
        options = item.options
        cells = ([_json_cell(options.attributes if options else None),
                  _json_cell(options.chunking_strategy if options else None)]
                 if with_options else [])
        local = [item.local.path if item.local else ""] if paths else []
        writer.writerow([item.owner, "" if item.local else item.file_id, *local,
                         info.status if info else "",
                         error_text(err.get("code")) or "", error_text(err.get("message")) or "",
                         "true" if info and info.retryable else "false", *cells,
                         _failed_op(info.op if info else "attach")])
    return EXIT_OK


def _failed_op(op: str) -> str:
    """An update that failed is finished by `run`, as an attach is."""
    return "detach" if op == "detach" else "attach"


def _json_cell(value: Any) -> str:
    """An option as a manifest's CSV cell: JSON, or empty when the pair does not give it."""
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "), allow_nan=False)
