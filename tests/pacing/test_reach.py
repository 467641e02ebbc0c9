"""Default settings reach the API's limit (SPEC, "Behaviour under trouble"): the real CLI against
the real sandbox over loopback, judged by the run's summary and the sandbox's own record."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.cli import attached_counts, make_pairs, run_cli, write_csv


def share_429(record: dict[str, object]) -> float:
    by_status = record["by_status"]
    assert isinstance(by_status, dict)
    return by_status.get("429", 0) / max(1, sum(by_status.values()))


@pytest.mark.parametrize(("rps", "latency_ms"), [(100, 300), (50, 1000)])
def test_default_settings_reach_an_undisclosed_limit_at_slow_round_trips(
        tmp_path: Path, sandbox, rps: int, latency_ms: int):
    """N pairs in at most N/R/0.95 + 3 round trips, <= 0.5% 429s, with no setting given."""
    sb = sandbox(rps=rps, latency_ms=latency_ms)
    pairs = make_pairs(15, 20)  # 300 pairs: at 16 in flight (the old default) both miss
    manifest = write_csv(tmp_path / "m.csv", pairs)
    res = run_cli("run", str(manifest), "--target", "assistant-files",
                  "--base-url", sb.base_url, "--no-progress", "--json")
    assert res.code == 0, res.err
    summary = res.json()
    bound = len(pairs) / rps / 0.95 + 3 * latency_ms / 1000
    assert summary["elapsed_s"] <= bound, (summary, bound)
    record = sb.record()
    assert share_429(record) <= 0.005, record["by_status"]
    assert attached_counts(record, pairs) == [1] * len(pairs)


@pytest.mark.parametrize("sandbox_config", [{}, {"rps": 200, "latency_ms": 30}])
def test_default_settings_keep_the_breaker_within_40_attach_requests(
        tmp_path: Path, sandbox, sandbox_config: dict[str, float]):
    """A wrong base URL with the default --concurrency: exit 4 after at most 40 POSTs."""
    sb = sandbox(**sandbox_config)
    manifest = write_csv(tmp_path / "m.csv", make_pairs(10, 20))
    started = time.monotonic()
    res = run_cli("run", str(manifest), "--target", "assistant-files",
                  "--base-url", sb.base_url + "/nope", "--no-progress")
    assert res.code == 4, res.err
    assert "the first 20 attach requests were all refused the same way (404)" in res.err
    sent = sb.record()["requests"]
    assert 20 <= sent <= 40, sent
    assert time.monotonic() - started < 10


def test_a_stores_own_429_slows_that_store_not_the_run(tmp_path: Path, sandbox):
    """6 stores whose limit (600/min) is under --store-rpm (900): each store's 429 names it and
    carries its own headers; the stores run near the sum of their limits, and the run's own
    rate stays what the global headers say (12,000/min), not one store's."""
    stores, per_store, store_rpm = 6, 40, 600
    sb = sandbox(rps=200, store_rpm=store_rpm, latency_ms=20)
    pairs = make_pairs(stores, per_store, prefix="vs")  # grouped by store, as YAML would be
    manifest = write_csv(tmp_path / "m.csv", pairs, "vector_store_id")
    res = run_cli("run", str(manifest), "--target", "vector-store-files", "--store-rpm", "900",
                  "--base-url", sb.base_url, "--no-progress", "--json")
    assert res.code == 0, res.err
    summary = res.json()
    record = sb.record()
    assert attached_counts(record, pairs) == [1] * len(pairs)
    assert record["rate_limited"]["requests"] == 0  # no global 429: the stores did not drag it
    by_store = record["rate_limited_by_store"]
    assert sum(by_store.values()) >= 1  # the case under test: stores did answer 429
    assert max(by_store.values()) <= 3, by_store  # each store learned from its own headers
    assert summary["rpm_learned"] >= 0.9 * 200 * 60, summary  # the global limit, not 600
    files_per_s = len(pairs) / summary["elapsed_s"]
    allowed = stores * store_rpm / 60
    assert files_per_s >= 0.85 * allowed, (files_per_s, allowed, summary)
