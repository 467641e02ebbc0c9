"""The key never shows, and the transport stays safe.

Every command and every failure path runs with a key no test could guess (a sentinel), and the
test asserts it is absent from stdout, stderr, the log, the lock file, any crash report and the
repr/str of the objects that hold it. Only its last 4 characters may ever appear: the check is
that no 8 consecutive characters of it do. At the end of the module every file under the
session's temporary directories is searched for it too.

Transport: https unless the host is loopback; TLS verification cannot be turned off (a
self-signed server is refused, SSL_CERT_FILE is honoured); log and lock files are 0600.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import re
import shutil
import ssl
import stat
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

import runner
from runner.cli import build_parser
from runner.config import ApiKey, load_api_key, resolve_settings
from runner.requests.client import ApiClient
from runner.sandbox import SandboxConfig
from runner.sandbox.handlers import SandboxApi
from tests.cli import FAST, Result, main_in, make_a_worker_raise, run_cli, write_csv

SECRET = os.urandom(16).hex()
SENTINEL = "sk-SENTINEL-" + SECRET
# Any 8 characters in a row of its random part reveal more than its last 4.
PIECES = [SECRET[i : i + 8] for i in range(len(SECRET) - 7)]
PAIRS = [("asst_1", "file-1"), ("asst_1", "file-2"), ("asst_2", "file-3")]
MANIFEST_TEXT = "assistant_id,file_id\n" + "".join(f"{o},{f}\n" for o, f in PAIRS)


def shows_key(text: str | bytes) -> list[str]:
    """The pieces of the sentinel found in `text` (empty: nothing of it beyond the last 4)."""
    data = text.encode() if isinstance(text, str) else text
    return [piece for piece in PIECES if piece.encode() in data]


def assert_no_key(*texts: str | bytes) -> None:
    for text in texts:
        assert shows_key(text) == []


def assert_files_hold_no_key(root: Path, *, but: str = "key.txt") -> None:
    """No regular file under `root` (but the key files, named `but`) holds the key."""
    for path in sorted(root.rglob("*")):
        if path.name == but or path.is_symlink():
            continue
        if stat.S_ISREG(path.stat().st_mode):
            assert shows_key(path.read_bytes()) == [], f"{path} holds the key"


@pytest.fixture(scope="module", autouse=True)
def nothing_on_disk_holds_the_key(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """After every test here: no file under the session's temporary directories holds the key
    (key files are removed by the tests that make them)."""
    yield
    assert_files_hold_no_key(tmp_path_factory.getbasetemp(), but="")


@pytest.fixture
def work(tmp_path: Path) -> Path:
    """A directory with the manifest m.csv, and a TMPDIR for crash reports beside it."""
    write_csv(tmp_path / "m.csv", PAIRS)
    (tmp_path / "tmp").mkdir()
    return tmp_path


@pytest.fixture
def key_file(tmp_path: Path) -> Iterator[Path]:
    """A file holding the key (mode set by the test); removed afterwards, so that the final
    search finds only leaks."""
    path = tmp_path / "key.txt"
    path.write_text(SENTINEL + "\n")
    path.chmod(0o600)
    yield path
    path.unlink(missing_ok=True)


def cli(work: Path, *args: str, key: str | None = SENTINEL, **env: str) -> Result:
    """The real CLI in `work`, with the sentinel as OPENAI_API_KEY and TMPDIR in `work`."""
    res = run_cli(*args, cwd=work, key=key, env={"TMPDIR": str(work / "tmp"), **env})
    assert "Traceback" not in res.out + res.err
    return res


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ---------------------------------------------------------------------- every command


def test_a_good_run_and_every_reader_never_show_the_key(work: Path, sandbox):
    """run (text, --json, --debug), status (text, --json), failed, validate and --dry-run:
    the key is in none of their output, nor in the log or the lock file."""
    sb = sandbox(api_key=SENTINEL, fail_rate=0.3, seed=5)
    url = ["--base-url", sb.base_url, *FAST, "--max-attempts", "20"]
    results = [
        cli(work, "run", "m.csv", *url, "--debug"),
        cli(work, "run", "m.csv", *url, "--json"),
        cli(work, "run", "m.csv", *url),
        cli(work, "status", "m.csv"),
        cli(work, "status", "m.csv", "--json"),
        cli(work, "failed", "m.csv"),
        cli(work, "validate", "m.csv"),
        cli(work, "run", "m.csv", *url, "--dry-run"),
    ]
    assert [r.code for r in results] == [0] * len(results), [r.err for r in results]
    assert_no_key(*(r.out + r.err for r in results))
    log, lock = work / "m.csv.results.jsonl", work / "m.csv.results.jsonl.lock"
    assert log.exists()
    assert lock.exists()
    assert_no_key(log.read_bytes(), lock.read_bytes())
    assert_files_hold_no_key(work)


def test_a_wrong_key_is_named_by_its_source_never_shown(work: Path, sandbox):
    """A 401: exit 4, one line naming the variable; the server's masked echo shows only the
    last 4 characters, and nothing more of the key appears anywhere."""
    sb = sandbox(api_key="sk-the-right-key-0000000000000000")
    res = cli(work, "run", "m.csv", "--base-url", sb.base_url, "--no-progress", *FAST)
    assert res.code == 4
    assert res.err.splitlines() == [
        "attach-runner: error: the API refused the key (401) from the OPENAI_API_KEY environment "
        "variable; put a valid key there and run again"]
    assert SENTINEL[-4:] in res.out  # the server's "Incorrect API key provided: ****abcd"
    assert_no_key(res.out, res.err)
    assert_files_hold_no_key(work)


def test_a_wrong_key_from_a_file_names_the_file(work: Path, sandbox, key_file: Path):
    """The same 401 with --api-key-file names the file, and shows nothing of the key."""
    sb = sandbox(api_key="sk-the-right-key-0000000000000000")
    res = cli(work, "run", "m.csv", "--base-url", sb.base_url, "--api-key-file", "key.txt",
              "--json", *FAST, key=None)
    assert res.code == 4
    assert res.json()["error"] == ("the API refused the key (401) from the key file key.txt; "
                                   "put a valid key there and run again")
    assert_no_key(res.out, res.err)
    assert_files_hold_no_key(work)


def test_a_good_key_file_is_used_and_never_shown(work: Path, sandbox, key_file: Path):
    """A 0600 key file is read and its key sent; the key shows nowhere."""
    sb = sandbox(api_key=SENTINEL)
    res = cli(work, "run", "m.csv", "--base-url", sb.base_url, "--api-key-file", "key.txt",
              key=None)
    assert res.code == 0, res.err
    assert sb.record()["attached_total"] == len(PAIRS)
    assert_no_key(res.out, res.err)
    assert_files_hold_no_key(work)


@pytest.mark.parametrize("file_mode", [0o644, 0o640, 0o604, 0o660])
def test_a_key_file_open_to_others_is_refused(work: Path, sandbox, key_file: Path,
                                              file_mode: int):
    """A key file others could read is refused before anything is sent; the key is not shown."""
    sb = sandbox(api_key=SENTINEL)
    key_file.chmod(file_mode)
    res = cli(work, "run", "m.csv", "--base-url", sb.base_url, "--api-key-file", "key.txt",
              key=None)
    assert res.code == 2
    how = "readable by others" if file_mode & 0o044 else "open to others"
    assert res.err == (f"attach-runner: error: key.txt: the key file is {how} "
                       f"(mode {file_mode:04o}); run chmod 600 key.txt\n")
    assert sb.record()["requests"] == 0
    assert_no_key(res.out, res.err)


@pytest.mark.parametrize(
    "text",
    [f"OPENAI_API_KEY={SENTINEL} x\n", f"{SENTINEL}\n{SENTINEL}-second\n", f"{SENTINEL}\u00e9\n"],
    ids=["assignment", "two-keys", "non-ascii"])
def test_a_key_file_holding_more_than_a_key_is_refused_unseen(work: Path, key_file: Path,
                                                              text: str):
    """A key file with more than the key in it is refused; nothing of it is echoed."""
    key_file.write_text(text)
    res = cli(work, "run", "m.csv", "--api-key-file", "key.txt", key=None)
    assert res.code == 2
    assert res.err.startswith("attach-runner: error: key.txt: the key ")
    assert_no_key(res.out, res.err)


@pytest.mark.parametrize("name", ["api_key", "openai_api_key", "OPENAI_API_KEY", "token",
                                  "secret", "authorization", "bearer"])
@pytest.mark.parametrize("command", ["run", "validate", "status", "failed"])
def test_a_key_in_the_config_file_is_refused_unseen(work: Path, name: str, command: str):
    """A key in the config file is refused by every command, pointing to the environment;
    the value is never echoed."""
    (work / "cfg.yaml").write_text(f"concurrency: 4\n{name}: {SENTINEL}\n")
    res = cli(work, command, "m.csv", "--config", "cfg.yaml")
    assert res.code == 2
    assert res.err == ("attach-runner: error: cfg.yaml:2: an API key does not belong in a config "
                       "file; put it in the OPENAI_API_KEY environment variable (or use "
                       "--api-key-file)\n")
    assert_no_key(res.out, res.err)
    (work / "cfg.yaml").unlink()


@pytest.mark.parametrize(
    "argv",
    [["--api-key", SENTINEL], [f"--api-key={SENTINEL}"], [f"--openai-api-key={SENTINEL}"],
     [SENTINEL], ["--org", SENTINEL], ["--project", SENTINEL], ["--api-key-env", SENTINEL],
     ["--api-key-file", SENTINEL], ["--target", SENTINEL], ["--base-url", SENTINEL],
     ["--base-url", f"https://{SENTINEL}@api.openai.com/v1"]],
    ids=["api-key-flag", "api-key-equals", "openai-api-key", "positional", "org", "project",
         "api-key-env", "api-key-file", "target", "base-url", "base-url-userinfo"])
def test_a_key_on_the_command_line_is_refused_unseen(work: Path, sandbox, argv: list[str]):
    """A key typed where a flag's value or an argument goes is refused (exit 2, nothing sent),
    never echoed, and never reaches the `next:` command of a summary."""
    sb = sandbox(api_key=SENTINEL)
    res = cli(work, "run", "m.csv", *argv, "--json", *(
        [] if argv[0] == "--base-url" else ["--base-url", sb.base_url]))
    assert res.code == 2, res.err
    assert len(res.err.splitlines()) == 1
    assert res.json()["exit"] == 2
    assert sb.record()["requests"] == 0
    assert_no_key(res.out, res.err)


def test_a_flag_with_a_key_given_as_the_manifest_path_is_never_echoed(work: Path, sandbox):
    """After `--` a pasted key is the manifest's path: the "no such file" line (exit 2, nothing
    sent) says so without echoing it."""
    sb = sandbox(api_key=SENTINEL)
    res = cli(work, "run", "--base-url", sb.base_url, "--", f"--api-key={SENTINEL}")
    assert res.code == 2, res.err
    assert res.err.splitlines() == [res.err.strip()]
    assert "no such file" in res.err
    assert sb.record()["requests"] == 0
    assert_no_key(res.out, res.err)


@pytest.mark.parametrize("variable", ["OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "OPENAI_BASE_URL"])
def test_a_key_in_the_wrong_variable_is_refused_unseen(work: Path, variable: str):
    """The key put in OPENAI_ORG_ID (or another variable that is not the key's) is refused."""
    res = cli(work, "validate", "m.csv", **{variable: SENTINEL})
    assert res.code == 2
    assert res.err.startswith(f"attach-runner: error: {variable}: ")
    assert_no_key(res.out, res.err)


def test_a_key_with_a_line_break_is_refused_unseen(work: Path):
    """A key pasted with a line break inside is refused without showing either part."""
    res = cli(work, "run", "m.csv", key=f"{SENTINEL[:20]}\n{SENTINEL[20:]}")
    assert res.err == ("attach-runner: error: OPENAI_API_KEY: the key has a space or line break "
                       "inside; set OPENAI_API_KEY to the key alone\n")
    assert_no_key(res.out, res.err)


# ---------------------------------------------------------------------- a crash


def crash_in_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make a worker raise while it holds the key, the way a careless bug would."""
    make_a_worker_raise(
        monkeypatch, f"simulated bug; headers were {{'Authorization': 'Bearer {SENTINEL}'}}")


def test_a_crash_report_never_holds_the_key(work: Path, sandbox, monkeypatch):
    """A worker's exception that quotes the key: the report (0600) has it scrubbed."""
    sb = sandbox(api_key=SENTINEL)
    crash_in_worker(monkeypatch)
    res = main_in(work, monkeypatch, ["run", "m.csv", "--base-url", sb.base_url, "--quiet"],
                  key=SENTINEL)
    assert res.code == 70
    [report] = (work / "tmp").iterdir()
    assert mode(report) == 0o600
    text = report.read_text()
    assert "Traceback" in text
    assert "[REDACTED]" in text
    assert_no_key(res.out, res.err, text)
    assert_files_hold_no_key(work)


def test_debug_shows_the_traceback_but_never_the_key(work: Path, sandbox, monkeypatch):
    """--debug prints the traceback on stderr, key scrubbed; no report file is written."""
    sb = sandbox(api_key=SENTINEL)
    crash_in_worker(monkeypatch)
    res = main_in(work, monkeypatch, ["run", "m.csv", "--base-url", sb.base_url, "--debug"],
                  key=SENTINEL)
    assert res.code == 70
    assert "Traceback" in res.err
    assert "RuntimeError: simulated bug" in res.err
    assert res.err.splitlines()[-1] == ("attach-runner: internal error (RuntimeError); this is "
                                        "a bug")
    assert list((work / "tmp").iterdir()) == []
    assert_no_key(res.out, res.err)


# ---------------------------------------------------------------------- the objects


def test_objects_that_hold_the_key_never_show_it():
    """repr and str of Settings, ApiKey and ApiClient show at most the last 4 characters."""
    parser = build_parser()
    args = parser.parse_args(["run", "m.csv"])
    settings = resolve_settings(args, command="run", environ={"OPENAI_API_KEY": SENTINEL})
    key = load_api_key(settings, {"OPENAI_API_KEY": SENTINEL})
    assert key.reveal() == SENTINEL
    client = ApiClient("https://api.openai.com/v1", api_key=SENTINEL, beta_header="x", org=None,
                       project=None, concurrency=1, timeout=1)
    shown = [repr(settings), str(settings), repr(vars(settings)), repr(key),
             str(key), f"{key}", f"{key!r}", repr([key]), repr({"key": key}), repr(client),
             str(client)]
    assert_no_key(*shown)
    assert key.last4 == SENTINEL[-4:]
    assert str(key) == (f"the API key ...{SENTINEL[-4:]} from the OPENAI_API_KEY environment "
                        "variable")
    assert not hasattr(key, "__dict__")  # slots: vars() cannot spill it
    with pytest.raises(TypeError):
        pickle.dumps(key)
    assert_no_key(repr(ApiKey(SENTINEL, "the key file k.txt")))


# ---------------------------------------------------------------------- transport


def test_no_switch_turns_tls_verification_off():
    """Nothing in the product turns certificate checks off: no ssl=False, no CERT_NONE."""
    package = Path(runner.__file__).parent
    pattern = re.compile(r"ssl\s*=\s*False|verify_ssl|CERT_NONE|check_hostname\s*=\s*False|"
                         r"_create_unverified_context|PYTHONHTTPSVERIFY")
    offenders = [f"{path}:{n}" for path in package.rglob("*.py")
                 for n, line in enumerate(path.read_text().splitlines(), 1)
                 if pattern.search(line)]
    assert offenders == []


@pytest.mark.parametrize(
    ("url", "accepted"),
    [("https://api.openai.com/v1", True), ("http://127.0.0.1:8089/v1", True),
     ("http://127.9.8.7/v1", True), ("http://[::1]:8089/v1", True),
     ("http://localhost:8089/v1", True), ("HTTP://LOCALHOST:8089/v1", True),
     ("http://api.openai.com/v1", False), ("http://0.0.0.0:8089/v1", False),
     ("http://10.0.0.1/v1", False), ("http://localhost.example.com/v1", False),
     ("http://127.0.0.1.nip.io/v1", False), ("http://[::ffff:127.0.0.1]/v1", False),
     ("http://128.0.0.1/v1", False), ("ftp://127.0.0.1/v1", False)],
)
def test_https_unless_loopback(work: Path, monkeypatch, url: str, accepted: bool):
    """Plain http only to 127.0.0.0/8, ::1 or localhost; https anywhere."""
    res = main_in(work, monkeypatch, ["run", "m.csv", "--dry-run", "--base-url", url],
                  key=SENTINEL)
    if accepted:
        assert (res.code, res.err) == (0, ""), res.err
    else:
        assert res.code == 2
        assert res.err.startswith("attach-runner: error: --base-url: ")
        assert len(res.err.splitlines()) == 1


def test_a_run_over_localhost_by_name_works(work: Path, sandbox):
    """`localhost` is loopback: plain http to it is allowed, and the run attaches every pair."""
    sb = sandbox(api_key=SENTINEL)
    url = sb.base_url.replace("127.0.0.1", "localhost")
    res = cli(work, "run", "m.csv", "--base-url", url)
    assert res.code == 0, res.err
    assert sb.record()["attached_total"] == len(PAIRS)


def test_log_and_lock_are_0600_after_a_real_run(work: Path, sandbox):
    """After a run, the log and the lock are 0600, even when the log was 0644 before."""
    sb = sandbox(api_key=SENTINEL)
    log = work / "m.csv.results.jsonl"
    log.touch()
    log.chmod(0o644)
    old_umask = os.umask(0)
    try:
        res = cli(work, "run", "m.csv", "--base-url", sb.base_url)
    finally:
        os.umask(old_umask)
    assert res.code == 0, res.err
    assert mode(log) == 0o600
    assert mode(work / "m.csv.results.jsonl.lock") == 0o600
    fresh = work / "fresh.jsonl"
    res = cli(work, "run", "m.csv", "--base-url", sb.base_url, "--log", str(fresh))
    assert res.code == 0, res.err
    assert (mode(fresh), mode(work / "fresh.jsonl.lock")) == (0o600, 0o600)


class HttpsSandbox:
    """The sandbox's API served over TLS with a self-signed certificate, in a thread."""

    def __init__(self, cert: Path, key: Path, api_key: str) -> None:
        self.api = SandboxApi(SandboxConfig(api_key=api_key))
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(cert, key)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.port = 0

    def _serve(self) -> None:
        async def start() -> web.AppRunner:
            app_runner = web.AppRunner(self.api.app, access_log=None, handle_signals=False)
            await app_runner.setup()
            site = web.TCPSite(app_runner, "127.0.0.1", 0, ssl_context=self._context)
            await site.start()
            self.port = app_runner.addresses[0][1]
            return app_runner

        app_runner = self._loop.run_until_complete(start())
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(app_runner.cleanup())
        self._loop.close()

    def __enter__(self) -> HttpsSandbox:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def requests(self) -> int:
        async def read() -> int:
            return int(self.api.record.snapshot()["requests"])

        return asyncio.run_coroutine_threadsafe(read(), self._loop).result(10)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60)
    return cert, key


def test_tls_verification_is_on_and_ssl_cert_file_is_honoured(work: Path, certificate):
    """Against a self-signed https server the run is refused at the handshake (no request
    reaches it, even with PYTHONHTTPSVERIFY=0) and stops at once: exit 4, one line naming the
    host and SSL_CERT_FILE, not a retry per pair (before: exit 1 after every pair's tries).
    With SSL_CERT_FILE naming that certificate, the same run attaches every pair."""
    cert, key = certificate
    with HttpsSandbox(cert, key, SENTINEL) as server:
        url = f"https://127.0.0.1:{server.port}/v1"
        res = cli(work, "run", "m.csv", "--base-url", url, "--max-attempts", "5", "--rpm",
                  "6000", "--concurrency", "2", *FAST, PYTHONHTTPSVERIFY="0")
        assert res.code == 4, res.err
        [line] = res.err.strip().splitlines()
        assert line.startswith("attach-runner: error: cannot verify the TLS certificate of "
                               "127.0.0.1: self-signed certificate; "), line
        assert "SSL_CERT_FILE" in line
        assert res.out.startswith("attach-runner: stopped: the run was refused as a whole (")
        assert "cannot verify the TLS certificate of 127.0.0.1" in res.out  # its reason
        assert server.requests() == 0
        res = cli(work, "run", "m.csv", "--base-url", url, SSL_CERT_FILE=str(cert))
        assert res.code == 0, res.out + res.err
        assert server.requests() == len(PAIRS)
    assert_no_key(res.out, res.err)
