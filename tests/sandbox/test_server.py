"""The sandbox as a server: in the caller's own event loop, its config's checks, and
`attach-runner sandbox` (prints its URL, serves, stops on SIGTERM, loopback only)."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import sys

import pytest

from runner.errors import UsageError
from runner.sandbox import (
    Sandbox,
    SandboxConfig,
    add_sandbox_arguments,
    confirm_attached_once,
    run_sandbox_command,
)
from tests.sandbox.client import V1, Http, StartSandbox, call

# -- in process --------------------------------------------------------------------------------


async def test_in_process_sandbox_in_the_callers_loop(http: Http) -> None:
    """Sandbox runs in the test's own loop: start, serve, record, stop."""
    sandbox = Sandbox(SandboxConfig(api_key="sk-other-key"))
    url = await sandbox.start()
    try:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", url)
        headers = {**V1, "Authorization": "Bearer sk-other-key"}
        answer = await call(http, "POST", f"{url}/assistants/asst_1/files", {"file_id": "f"},
                            headers=headers)  # fmt: skip
        assert answer.status == 200
    finally:
        await sandbox.stop()
    assert confirm_attached_once(sandbox.record(), [("asst_1", "f")]) == []


def test_config_rejects_bad_values_and_unknown_settings(sandbox: StartSandbox) -> None:
    """Bad settings are a ValueError naming the field; unknown ones suggest the closest."""
    with pytest.raises(ValueError, match="fail_rate must be between 0 and 1"):
        SandboxConfig(fail_rate=1.5)
    with pytest.raises(ValueError, match="must not exceed 1"):
        SandboxConfig(fail_rate=0.6, slow_rate=0.6)
    sb = sandbox()
    with pytest.raises(ValueError, match="did you mean 'store_rpm'"):
        sb.update(store_rmp=300)


# -- the command -------------------------------------------------------------------------------


CLI = (
    "import sys, argparse; from runner.sandbox import add_sandbox_arguments, run_sandbox_command;"
    " p = argparse.ArgumentParser(); add_sandbox_arguments(p);"
    " sys.exit(run_sandbox_command(p.parse_args(sys.argv[1:])))"
)

async def test_cli_prints_its_url_serves_and_stops_on_sigterm(http: Http) -> None:
    """The command prints `listening on URL` first, takes OPENAI_API_KEY, exits 0 on SIGTERM."""
    env = {**os.environ, "OPENAI_API_KEY": "sk-from-env-1234"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CLI, "--port", "0", "--seed", "3",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 10)).decode()
        match = re.fullmatch(r"listening on (http://127\.0\.0\.1:(\d+)/v1)\n", line)
        assert match, line
        files = f"{match.group(1)}/assistants/asst_1/files"
        assert (await call(http, "GET", files)).status == 401
        headers = {**V1, "Authorization": "Bearer sk-from-env-1234"}
        assert (await call(http, "GET", files, headers=headers)).status == 200
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), 10)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.communicate()
    assert proc.returncode == 0, err
    assert out == b""
    assert err.decode().startswith("sandbox: 2 requests (200: 1, 401: 1)")


def test_cli_refuses_a_non_loopback_host() -> None:
    """--host must be a loopback address: anything else is a UsageError (exit 2)."""
    parser = argparse.ArgumentParser()
    add_sandbox_arguments(parser)
    with pytest.raises(UsageError, match="0.0.0.0 is not a loopback address") as caught:
        run_sandbox_command(parser.parse_args(["--host", "0.0.0.0"]))
    assert caught.value.exit_code == 2
