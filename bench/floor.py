"""The floor for resume: the least a correct rerun must do, in plain Python.

json.loads every line of the log, keep a set of the pairs whose last `done` says attached or
already_attached, then read the manifest with the csv module and count the pairs left to send.
No validation, no de-duplication report, no lock, no network.

    python bench/floor.py MANIFEST.csv LOG.jsonl

Prints one JSON line: {"pairs": N, "done": N, "to_send": N, "elapsed_s": S}.
"""

from __future__ import annotations

import csv
import json
import sys
import time


def main(manifest: str, log: str) -> dict[str, float]:
    started = time.perf_counter()
    done: set[tuple[str, str]] = set()
    with open(log, "rb") as lines:
        for line in lines:
            event = json.loads(line)
            if event["event"] != "done":
                continue
            pair = (event["assistant_id"], event["file_id"])
            if event["outcome"] in ("attached", "already_attached"):
                done.add(pair)
            else:
                done.discard(pair)
    pairs = to_send = 0
    with open(manifest, newline="", encoding="utf-8") as stream:
        reader = csv.reader(stream)
        header = next(reader)
        owner_at, file_at = header.index("assistant_id"), header.index("file_id")
        for row in reader:
            pairs += 1
            if (row[owner_at], row[file_at]) not in done:
                to_send += 1
    return {"pairs": pairs, "done": len(done), "to_send": to_send,
            "elapsed_s": round(time.perf_counter() - started, 3)}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2])))
