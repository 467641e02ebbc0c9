"""Deleting a file object of ours (SPEC "Local files", Clean-up): `DELETE /files/{id}`, which
the API carries out in every vector store that holds the file, so it is only ever asked for a
file object this log uploaded or adopted and shows in no store (log/versions.py decides which),
or for an upload that must not be attached (a file changed while it was uploaded).

Lines: `file-delete-sent {file_id}` before the request, `file-deleted {file_id, status,
uncertain}` after it. A delete whose outcome is unknown (dropped after sending, a
500/502/504) is settled as every write is: after --settle, a `GET /files/{id}` (404: deleted;
200: delete again), never repeated blind; a run that stops first leaves the `file-delete-sent`
to the next run, which checks first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from runner.log.uploads import UploadIndex
from runner.log.versions import VersionIndex
from runner.log.writer import ResultLog
from runner.pacing.spare import DELETE_RANK
from runner.requests.outcomes import GaveUp
from runner.requests.sender import Sender
from runner.requests.targets import ApiError, api_error


@dataclass
class DeleteCounts:
    deleted: int = 0  # file objects of ours this run deleted (or found gone)
    failed: list[tuple[str, int | None, ApiError | None]] = field(default_factory=list)


class FileDeleter:
    """Deletes for one run's sender; keeps the log's index of our uploads true as it goes."""

    def __init__(self, sender: Sender, uploads: UploadIndex, versions: VersionIndex,
                 log: ResultLog, *, keep: bool = False) -> None:
        self.sender = sender
        # --keep-files: never delete (an upload of a file that changed meanwhile stays too,
        # unattached: a later run without the flag deletes it, as any unused object of ours).
        self.keep = keep
        self.uploads = uploads
        self.versions = versions
        self.log = log
        self.counts = DeleteCounts()

    async def delete(self, file_id: str, *, check_first: bool = False) -> bool:
        """Delete the file object (`check_first`: an earlier delete of it may have landed:
        GET it first). True once it is gone. Raises RunRefused for the run."""
        if self.keep:
            return False
        sender = self.sender
        path = f"/files/{file_id}"
        for _ in range(max(1, sender.max_attempts)):
            if check_first:
                try:
                    answer = await sender.request_retrying("GET", path, kind="check")
                except GaveUp as exc:
                    return self._failed(file_id, exc.status, exc.error)
                if answer.status == 404:
                    return self._gone(file_id, 404)
                if not 200 <= answer.status < 300:
                    return self._failed(file_id, answer.status,
                                        api_error(answer.status, answer.body, answer.text))
            self.log.append_file_delete_sent(file_id)
            self.versions.deletes_unsettled[file_id] = 0.0
            try:
                answer = await sender.request_retrying("DELETE", path, spare=DELETE_RANK)
            except GaveUp as exc:
                if not exc.uncertain:  # surely not applied: the next run checks, then deletes
                    return self._failed(file_id, exc.status, exc.error)
                self.log.append_file_deleted(file_id, exc.status, uncertain=True)
                await sender.pause(sender.settle)  # SPEC's settle rule, then a GET
                if sender.halted:
                    return self._failed(file_id, exc.status, exc.error)
                check_first = True
                continue
            if 200 <= answer.status < 300 or answer.status == 404:
                return self._gone(file_id, answer.status)
            return self._failed(file_id, answer.status,
                                api_error(answer.status, answer.body, answer.text))
        return self._failed(file_id, None, ApiError(
            "delete_uncertain", "every delete's outcome was unknown", None))

    def _gone(self, file_id: str, status: int) -> bool:
        self.log.append_file_deleted(file_id, status, uncertain=False)
        self.uploads.load({"event": "file-deleted", "file_id": file_id})
        self.versions.deletes_unsettled.pop(file_id, None)
        self.counts.deleted += 1
        return True

    def _failed(self, file_id: str, status: int | None, error: ApiError | None) -> bool:
        self.counts.failed.append((file_id, status, error))
        return False
