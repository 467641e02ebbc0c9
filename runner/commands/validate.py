"""`attach-runner validate MANIFEST`: check the whole manifest as a run would, send nothing."""


from __future__ import annotations

from runner.commands.common import prepare
from runner.config import Settings
from runner.console import Io
from runner.errors import (
    EXIT_OK,
)


def validate(settings: Settings, io: Io) -> int:
    target, source, stats = prepare(settings, io)
    noun = "assistants" if target.owner_column == "assistant_id" else "vector stores"
    said = "--target" if settings.target is not None else "from the manifest"
    io.out.write(f"{source.display}: OK ({source.format}, {target.name}, {said})\n")
    io.out.write(f"  pairs: {stats.pairs}  (rows {stats.rows}, repeated {stats.duplicates})\n")
    io.out.write(f"  {noun}: {stats.owners}\n")
    if stats.max_files_owner is not None:
        io.out.write(f"  most files for one: {stats.max_files} ({stats.max_files_owner})\n")
    if target.owner_column == "assistant_id":
        for owner, n in stats.owners_over:
            io.warn(f"{source.display}: assistant {owner} gets {n} files; Assistants v1 allows "
                    "at most 20 per assistant, so the rest will be refused")
    return EXIT_OK
