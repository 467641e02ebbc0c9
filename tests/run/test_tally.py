"""The tally's failure reasons: one key a reason (status, code, the message with its IDs made
generic), bounded in number, and a failure taken back from wherever it was counted."""

from __future__ import annotations

from runner.requests.targets import ApiError
from runner.run.tally import MAX_REASONS, OTHER_REASONS, Tally


def test_reasons_group_by_generic_message_and_stay_bounded() -> None:
    """Messages that differ only in the IDs they name are one reason; past MAX_REASONS
    distinct reasons, the rest are counted together, and `unfail` takes one back from there."""
    tally = Tally()
    tally.fail(404, ApiError("invalid_request_error", "No file found with id 'file-1'.", None))
    tally.fail(404, ApiError("invalid_request_error", "No file found with id 'file-2'.", None))
    assert tally.failed == 2
    assert len(tally.failed_reasons) == 1
    for n in range(MAX_REASONS + 5):
        tally.fail(400 + n % 7, ApiError("e", "x" * (n + 1), f"code{n}"))
    assert len(tally.failed_reasons) == MAX_REASONS + 1
    assert tally.failed_reasons[OTHER_REASONS] == 6
    late = MAX_REASONS + 4
    tally.unfail(400 + late % 7, ApiError("e", "x" * (late + 1), f"code{late}"))
    assert tally.failed_reasons[OTHER_REASONS] == 5
    assert tally.failed == 2 + MAX_REASONS + 4
    fresh = Tally()
    fresh.fail(None, None, 3)  # no answer, no error: several at once (a store not listed)
    fresh.unfail(None, None)
    assert fresh.failed == 2
    assert fresh.failed_reasons == {(None, None, ""): 2}
