"""The exceptions built from the server's error details, the asyncio client
used as a new user would (start, watch and break out, a large artifact, a
retried start), the helpers (paging, outputs, waiting), the typed stubs,
and a clean install from the source tree."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from retake_client import AsyncClient, Client, RunStatus, common_pb2, enums, errors

from conftest import EXAMPLES

TIMEOUT_S = 60
PACKAGE = Path(__file__).resolve().parents[1]

DIAMOND = """
name: diamond
nodes:
  a: {agent: local://echo, inputs: {topic: "${user.topic}"}, outputs: [out]}
  b: {agent: local://mock, config: {response: "b says hi"}, inputs: {x: "${a.out}"}, outputs: [out], depends_on: [a]}
  c: {agent: local://mock, config: {response: "c says hi"}, inputs: {x: "${a.out}"}, outputs: [out], depends_on: [a]}
"""
ASK = "name: ask\nnodes:\n  q: {agent: human://input, system_prompt: Colour?, outputs: [answer]}\n"


# --- errors -------------------------------------------------------------------------


def test_errors_are_classes_by_reason(client):
    with pytest.raises(errors.RunNotFound) as err:
        client.get_run("run_nope")
    assert err.value.reason == "RUN_NOT_FOUND"
    assert err.value.run_id == "run_nope"
    # Still what code written for the generated stubs catches.
    assert isinstance(err.value, grpc.RpcError)
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert err.value.details() == "Run 'run_nope' not found"

    bad = "name: bad\nnodes:\n  a: {outputs: [o]}\n  b: {agent: local://echo, inputs: {q: \"${user.q}\"}, outputs: [o]}\n"
    with pytest.raises(errors.WorkflowInvalid) as err:
        client.start_run(bad)
    assert isinstance(err.value, errors.InvalidRequest)
    assert [v.field for v in err.value.violations] == ["nodes.a.agent", "nodes.b.inputs"]
    assert err.value.violations[0].description.startswith("line 3: node 'a': ")
    assert err.value.missing_variables == ["q"]
    assert "--" not in err.value.message

    run = client.start_run(DIAMOND, {"topic": "t"})
    client.wait(run.id, timeout=TIMEOUT_S)
    with pytest.raises(errors.ReplayDrift) as err:
        client.replay(run.id, from_="b", workflow=DIAMOND.replace("c says hi", "c changed"))
    assert err.value.nodes == ["c"]
    assert not err.value.retryable
    with pytest.raises(errors.ReplayInvalid):
        client.replay(run.id, from_="zz")

    # Errors of the raw stubs convert the same way.
    try:
        client.runs.GetRun(common_pb2.Run())  # the wrong message: refused by the server
    except grpc.RpcError as e:
        converted = errors.from_rpc_error(e)
        assert isinstance(converted, errors.RetakeError)


def test_a_busy_server_raises_server_busy_with_a_delay(tmp_path):
    from conftest import running_server

    slow = "name: slow\nnodes:\n  a: {agent: local://sleep, config: {ms: 600000}, outputs: [o]}\n"
    with running_server(tmp_path, "--max-concurrent-runs", "1") as address:
        with Client(address) as c:
            c.start_run(slow)
            with pytest.raises(errors.ServerBusy) as err:
                c.start_run(slow)
            assert err.value.retryable and err.value.retry_delay > 0
            assert err.value.metadata["limit"] == "1"


def test_enums_come_from_one_place():
    assert enums.RunStatus.Name(RunStatus.RUN_STATUS_FAILED) == "RUN_STATUS_FAILED"
    assert enums.ErrorReason.Name(enums.ErrorReason.REPLAY_DRIFT) == "REPLAY_DRIFT"
    for name in ("NodeStatus", "EventKind", "WaitKind", "ExperimentStatus", "FailureOrigin"):
        assert hasattr(enums, name)


# --- helpers ------------------------------------------------------------------------


def test_iter_runs_pages_through_everything(client):
    started = [client.start_run(EXAMPLES / "hello.yaml").id for _ in range(5)]
    for run_id in started:
        client.wait(run_id, timeout=TIMEOUT_S)
    seen = [r.id for r in client.iter_runs(workflow_name="hello", page_size=2)]
    assert seen[:5] == started[::-1]
    oldest = [r.id for r in client.iter_runs(workflow_name="hello", oldest_first=True, page_size=2)]
    assert oldest == seen[::-1]
    assert all(r.status == RunStatus.RUN_STATUS_COMPLETED for r in client.iter_runs(filter='workflow = "hello"'))


def test_read_output_decodes_by_media_type(client):
    run = client.start_run(DIAMOND, {"topic": "durable"})
    client.wait(run.id, timeout=TIMEOUT_S)
    assert client.read_output(run.id, "b") == "b says hi"
    echoed = client.read_output(run.id, "a", "out")
    assert echoed == {"topic": "durable"} or "durable" in str(echoed)
    with pytest.raises(KeyError):
        client.read_output(run.id, "a", "nope")


def test_wait_for_stops_at_a_wait_and_times_out(client):
    run = client.start_run(ASK)
    waiting = client.wait_for(run.id, timeout=TIMEOUT_S)
    assert waiting.status == RunStatus.RUN_STATUS_WAITING
    with pytest.raises(TimeoutError):
        client.wait_for(run.id, "finished", timeout=0.5)
    client.resolve_wait(run.id, value="blue")
    assert client.wait_for(run.id, "finished", timeout=TIMEOUT_S).status == RunStatus.RUN_STATUS_COMPLETED


# --- asyncio --------------------------------------------------------------------------


def test_the_asyncio_client_as_a_new_user_uses_it(server):
    async def main():
        async with AsyncClient(server) as c:
            # Start, watch, and break out while the run is live.
            run = await c.start_run(ASK)
            async for event in c.watch(run.id, timeout=TIMEOUT_S):
                if event.kind == common_pb2.EVENT_KIND_WAIT_STARTED:
                    break
            waits = await c.list_waits(run.id)
            assert [w.node_id for w in waits] == ["q"]
            await c.resolve_wait(run.id, value="red")
            done = await c.wait_for(run.id, "finished", timeout=TIMEOUT_S)
            assert done.status == RunStatus.RUN_STATUS_COMPLETED
            assert await c.read_output(run.id, "q") == "red"

            # A retried start with the same request_id is the same run.
            first = await c.start_run(EXAMPLES / "hello.yaml", request_id="async-once")
            again = await c.start_run(EXAMPLES / "hello.yaml", request_id="async-once")
            assert again.id == first.id
            with pytest.raises(errors.RequestIdReused) as err:
                await c.start_run(DIAMOND, {"topic": "t"}, request_id="async-once")
            assert err.value.run_id == first.id

            # An artifact at the size limit of a default gRPC message and past it.
            big = "".join(chr(97 + i % 26) for i in range(5_000_000))
            yaml = 'name: big\nnodes:\n  a: {agent: local://echo, inputs: {text: "${user.big}"}, outputs: [result]}\n'
            run = await c.start_run(yaml, {"big": big})
            await c.wait(run.id, timeout=TIMEOUT_S)
            content = await c.read_output(run.id, "a")
            assert big in str(content)

            # Errors are the same classes.
            with pytest.raises(errors.RunNotFound):
                await c.get_run("run_nope")
            with pytest.raises(errors.RunNotFound):
                async for _ in c.watch("run_nope", timeout=TIMEOUT_S):
                    pass

            ids = [r.id async for r in c.iter_runs(workflow_name="hello", page_size=1)]
            assert first.id in ids

    asyncio.run(asyncio.wait_for(main(), TIMEOUT_S * 2))


def test_a_watch_left_early_ends_its_call(server):
    """Breaking out of `async for` cancels the stream: the loop closes at
    once instead of waiting for a run that waits for a human."""

    async def main():
        async with AsyncClient(server) as c:
            run = await c.start_run(ASK)
            stream = c.watch(run.id)
            async for _ in stream:
                break
            await stream.aclose()
            await c.cancel(run.id)

    asyncio.run(asyncio.wait_for(main(), 10))


# --- typing and packaging --------------------------------------------------------------


def test_the_service_stubs_are_typed(tmp_path):
    """mypy sees the stubs' methods: a wrong request type is an error, not Any."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from retake_client import Client, run_pb2\n"
        "c = Client('127.0.0.1:1')\n"
        "reveal_type(c.runs.ListRuns)\n"
        "c.runs.ListRuns(run_pb2.GetRunRequest())\n"
        "waits: list[run_pb2.Wait] = c.list_waits()\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", "--python-version", "3.12", str(probe)],
        capture_output=True,
        text=True,
        cwd=PACKAGE,
        env={**os.environ, "MYPYPATH": str(PACKAGE)},
    )
    out = result.stdout
    assert "UnaryUnaryMultiCallable[retake.v1.run_pb2.ListRunsRequest" in out or "ListRunsRequest" in out, out
    assert 'has incompatible type "GetRunRequest"; expected "ListRunsRequest"' in out, out
    assert out.count("error:") == 1, out


def test_installing_from_the_source_tree_leaves_nothing_behind(tmp_path):
    copy = tmp_path / "src"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns(".venv", "__pycache__", ".pytest_cache", ".mypy_cache"))
    before = sorted(p.relative_to(copy) for p in copy.rglob("*"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path / "dist"), str(copy)],
        check=True,
    )
    after = sorted(p.relative_to(copy) for p in copy.rglob("*"))
    assert after == before, set(after) - set(before)
    wheel = next((tmp_path / "dist").glob("retake_client-*.whl"))
    listing = subprocess.run([sys.executable, "-m", "zipfile", "-l", str(wheel)], capture_output=True, text=True).stdout
    for member in ("retake_client/py.typed", "retake_client/v1/run_pb2_grpc.pyi", "retake_client/aio.py"):
        assert member in listing, listing
