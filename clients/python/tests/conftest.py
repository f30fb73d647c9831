"""Starts real retake-server processes for the tests: each binds
127.0.0.1:0, prints the port it got on its first stdout line, and keeps its
database in a temporary directory. RETAKE_SERVER_BIN overrides the binary,
which is otherwise target/debug/retake-server of this repository."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import threading
from pathlib import Path

import pytest

from retake_client import Client

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "examples"
STARTUP_TIMEOUT_S = 30


@contextlib.contextmanager
def running_server(workdir: Path, *extra_args: str):
    """Yields the `127.0.0.1:PORT` of a server started in `workdir`."""
    binary = Path(os.environ.get("RETAKE_SERVER_BIN", REPO / "target" / "debug" / "retake-server"))
    if not binary.is_file():
        pytest.fail(f"{binary} is missing: run `cargo build -p retake-server` or set RETAKE_SERVER_BIN")
    log = open(workdir / "server.log", "w+b")
    proc = subprocess.Popen(
        [str(binary), "--listen", "127.0.0.1:0", "--db", str(workdir / "retake.db"), *extra_args],
        stdout=subprocess.PIPE,
        stderr=log,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "NO_COLOR": "1"},
    )
    first_line: list = []
    ready = threading.Event()

    def drain() -> None:
        # Keeps reading so the server never blocks on a full stdout pipe.
        for line in proc.stdout:
            if not first_line:
                first_line.append(line.decode("utf-8", "replace").strip())
                ready.set()
        ready.set()

    threading.Thread(target=drain, daemon=True).start()
    ready.wait(STARTUP_TIMEOUT_S)
    match = re.search(r"listening on (\S+:\d+)", first_line[0]) if first_line else None
    try:
        if not match:
            log.seek(0)
            pytest.fail(
                f"retake-server did not report its address (first line: {first_line!r}):\n"
                + log.read().decode("utf-8", "replace")[-4000:]
            )
        yield match.group(1)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("retake-server")) as address:
        yield address


@pytest.fixture
def client(server):
    with Client(server) as c:
        yield c
