"""Python workers against a real retake-server: a decorated function runs
a workflow's step, async handlers stream text, an exception fails the node
with its traceback, and a worker killed mid-task (kill -9) loses the task
to another worker without the step completing twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from retake_client import Client, Task, TransientError, Worker, common_pb2

from conftest import running_server

TIMEOUT_S = 60


class Running:
    """A Worker served from a thread for the length of a `with` block."""

    def __init__(self, worker: Worker):
        self.worker = worker
        self.thread = threading.Thread(target=worker.run, daemon=True)

    def __enter__(self) -> Worker:
        self.thread.start()
        return self.worker

    def __exit__(self, *exc) -> None:
        self.worker.stop()
        self.thread.join(TIMEOUT_S)
        assert not self.thread.is_alive(), "the worker stops when asked"


def nodes(client: Client, run_id: str) -> dict:
    return {n.node_id: n for n in client.get_run(run_id, include_nodes=True).nodes}


def output(client: Client, node) -> str:
    from retake_client import artifact_pb2

    req = artifact_pb2.GetArtifactRequest(artifact_id=node.output_artifact_ids[0])
    return client.artifacts.GetArtifact(req).content.decode()


MIXED = """
name: mixed
nodes:
  fetch: {agent: local://echo, inputs: {topic: rust}, outputs: [result]}
  shout:
    agent: worker://shout
    inputs: {text: "${fetch.result}"}
    config: {style: loud}
    outputs: [result]
    depends_on: [fetch]
  count:
    agent: worker://count
    inputs: {text: "${shout.result}"}
    outputs: [letters, words]
    depends_on: [shout]
"""


def test_a_decorated_function_runs_a_step(server):
    worker = Worker(server, name="py-worker", concurrency=2)
    seen: list = []

    @worker.agent("shout")
    def shout(task: Task):
        seen.append(task)
        return task.inputs["text"]["topic"].upper() + "!"

    @worker.agent("count")
    def count(task: Task):
        text = task.inputs["text"]
        return {"letters": sum(c.isalpha() for c in text), "words": len(text.split())}

    with Client(server) as client, Running(worker):
        run = client.start_run(MIXED)
        finished = client.wait(run.id, timeout=TIMEOUT_S)
        assert finished.status == common_pb2.RUN_STATUS_COMPLETED, finished
        by_id = nodes(client, run.id)
        assert output(client, by_id["shout"]) == "RUST!"
        assert output(client, by_id["count"]) in ("4", "4.0")
        assert by_id["shout"].attempts[0].worker == "py-worker"
    task = seen[0]
    assert (task.run_id, task.node_id, task.attempt) == (run.id, "shout", 1)
    assert task.config == {"style": "loud"}
    assert task.upstream["fetch"]["result"] == {"topic": "rust"}
    assert task.output_names == ["result"]


def test_async_handlers_stream_text_to_watchers(server):
    worker = Worker(server)

    @worker.agent("story")
    async def story(task: Task):
        for word in ["once", " upon", " a", " time"]:
            task.emit(word)
        return "once upon a time"

    with Client(server) as client, Running(worker):
        run = client.start_run("name: s\nnodes:\n  tell: {agent: worker://story, outputs: [result]}\n")
        deltas = [e.delta for e in client.watch(run.id, timeout=TIMEOUT_S) if e.kind == common_pb2.EVENT_KIND_NODE_OUTPUT_DELTA]
        assert client.wait(run.id, timeout=TIMEOUT_S).status == common_pb2.RUN_STATUS_COMPLETED
        # A watcher that joined late gets the text so far as one piece.
        assert "".join(deltas) in ("once upon a time", "")
        assert output(client, nodes(client, run.id)["tell"]) == "once upon a time"


def test_an_exception_fails_the_node_with_its_traceback(server):
    worker = Worker(server)
    calls: list = []

    @worker.agent("fragile")
    def fragile(task: Task):
        calls.append(task.attempt)
        if task.attempt == 1:
            raise TransientError("the index is rebuilding")
        raise KeyError("no such document")

    with Client(server) as client, Running(worker):
        run = client.start_run(
            "name: e\nnodes:\n  look:\n    agent: worker://fragile\n    outputs: [result]\n"
            "    retry_policy: {max_retries: 5, backoff: fixed, initial_delay_ms: 1}\n"
        )
        finished = client.wait(run.id, timeout=TIMEOUT_S)
        assert finished.status == common_pb2.RUN_STATUS_FAILED
        node = nodes(client, run.id)["look"]
    assert calls == [1, 2], "a transient error is retried, any other is not"
    assert "KeyError: 'no such document'" in node.error
    assert "Traceback (most recent call last)" in node.error


def test_a_worker_with_a_wrong_token_is_refused(tmp_path):
    import grpc

    token_file = tmp_path / "token"
    token_file.write_text("right")
    with running_server(tmp_path, "--auth-token-file", str(token_file)) as address:
        worker = Worker(address, token="wrong")

        @worker.agent("x")
        def x(task):
            return "x"

        with pytest.raises(grpc.RpcError) as refused:
            worker.run()
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


WORKER_SCRIPT = """
import sys, time
sys.path.insert(0, {client_path!r})
from retake_client import Worker

worker = Worker({address!r}, name="doomed")

@worker.agent("slow")
def slow(task):
    print("started", task.attempt, flush=True)
    time.sleep(600)
    return "never"

worker.run()
"""


def test_a_worker_killed_mid_task_loses_it_to_another(tmp_path):
    with running_server(tmp_path, "--worker-lease-ms", "500") as address, Client(address) as client:
        script = tmp_path / "doomed.py"
        client_path = str(Path(__file__).resolve().parents[1])
        script.write_text(textwrap.dedent(WORKER_SCRIPT.format(client_path=client_path, address=address)))
        doomed = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
        try:
            run = client.start_run("name: k\nnodes:\n  job: {agent: worker://slow, outputs: [result]}\n")
            assert doomed.stdout.readline().strip() == "started 1"
            os.kill(doomed.pid, signal.SIGKILL)
        finally:
            doomed.kill()
            doomed.wait()
        rescuer = Worker(address, name="rescuer")

        @rescuer.agent("slow")
        def quick(task: Task):
            return f"done on attempt {task.attempt}"

        with Running(rescuer):
            finished = client.wait(run.id, timeout=TIMEOUT_S)
        assert finished.status == common_pb2.RUN_STATUS_COMPLETED
        node = nodes(client, run.id)["job"]
        assert output(client, node) == "done on attempt 2"
        assert [a.worker for a in node.attempts] == ["doomed", "rescuer"]
        assert node.attempts[0].error_origin == common_pb2.FAILURE_ORIGIN_INTERRUPTED


DRAIN_SCRIPT = """
import sys, time
sys.path.insert(0, {client_path!r})
from retake_client import Worker

worker = Worker({address!r}, name="drainer")

@worker.agent("slow")
def slow(task):
    print("started", flush=True)
    time.sleep(1.0)
    return "finished after Ctrl-C"

worker.run()
print("drained", flush=True)
"""


def test_ctrl_c_lets_the_task_in_hand_finish_and_deliver(tmp_path):
    with running_server(tmp_path) as address, Client(address) as client:
        script = tmp_path / "drainer.py"
        client_path = str(Path(__file__).resolve().parents[1])
        script.write_text(textwrap.dedent(DRAIN_SCRIPT.format(client_path=client_path, address=address)))
        proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
        try:
            run = client.start_run("name: d\nnodes:\n  job: {agent: worker://slow, outputs: [result]}\n")
            assert proc.stdout.readline().strip() == "started"
            proc.send_signal(signal.SIGINT)
            assert proc.stdout.readline().strip() == "drained"
            assert proc.wait(TIMEOUT_S) == 0
        finally:
            proc.kill()
            proc.wait()
        finished = client.wait(run.id, timeout=TIMEOUT_S)
        assert finished.status == common_pb2.RUN_STATUS_COMPLETED
        node = nodes(client, run.id)["job"]
        assert output(client, node) == "finished after Ctrl-C"
        assert len(node.attempts) == 1


def test_a_worker_reaches_a_tls_server_with_its_ca_and_a_token(tmp_path):
    def sh(*args):
        subprocess.run(args, cwd=tmp_path, check=True, capture_output=True)

    sh("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=retake CA",
       "-keyout", "ca.key", "-out", "ca.crt")
    sh("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
       "-keyout", "server.key", "-out", "server.csr")
    (tmp_path / "server.ext").write_text("basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n")
    sh("openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
       "-days", "2", "-extfile", "server.ext", "-out", "server.crt")
    (tmp_path / "token").write_text("s3cret")
    args = ("--tls-cert", str(tmp_path / "server.crt"), "--tls-key", str(tmp_path / "server.key"),
            "--auth-token-file", str(tmp_path / "token"))
    with running_server(tmp_path, *args) as address:
        ca = (tmp_path / "ca.crt").read_bytes()
        target = "https://" + address.replace("127.0.0.1", "localhost")
        worker = Worker(target, token="s3cret", root_certificates=ca, name="tls-worker")

        @worker.agent("secure")
        def secure(task: Task):
            return "over TLS"

        with Client(target, token="s3cret", root_certificates=ca) as client, Running(worker):
            run = client.start_run("name: t\nnodes:\n  job: {agent: worker://secure, outputs: [result]}\n")
            assert client.wait(run.id, timeout=TIMEOUT_S).status == common_pb2.RUN_STATUS_COMPLETED
            node = nodes(client, run.id)["job"]
            assert node.status == common_pb2.NODE_STATUS_COMPLETED
            assert node.attempts[0].worker == "tls-worker"
