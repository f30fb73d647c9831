"""Workers: your own Python functions as the steps of retake workflows.

A node whose agent is `worker://NAME` becomes a task for a worker that
serves the agent NAME::

    from retake_client import Worker

    worker = Worker("127.0.0.1:50051")           # token=..., concurrency=N

    @worker.agent("summarize")
    def summarize(task):                           # task.inputs, task.config, task.prompt, ...
        return {"result": "..."}                   # or a plain value for a node with one output

    worker.run()                                   # blocks; reconnects; Ctrl-C drains

The worker keeps one stream open to the server (`WorkerService.Work`): it
says which agents it serves and how many tasks it runs at once, receives
tasks, and sends heartbeats so the server knows it is alive. A task whose
worker stops being heard from goes to another worker as a new attempt,
which does not count against the node's retry budget.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import queue
import re
import socket
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Optional

import grpc

from .v1 import worker_pb2, worker_pb2_grpc

__all__ = ["Worker", "Task", "TransientError"]

log = logging.getLogger("retake_client.worker")

# Codes a reconnect cannot fix: the worker is refused for what it is.
_FATAL = {
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.UNIMPLEMENTED,
}


class TransientError(Exception):
    """Raise it from a handler when another attempt may succeed (a rate
    limit, a flaky dependency): the node's retry policy decides. Any other
    exception fails the task for good, with its message and traceback."""


@dataclass
class Task:
    """One attempt of a node, as a handler receives it."""

    id: str
    agent: str
    run_id: str
    node_id: str
    node_execution_id: str
    attempt: int
    inputs: dict
    config: dict
    prompt: str
    output_names: list
    deadline: Optional[datetime]
    #: The direct dependencies' outputs: {node_id: {output_name: text}}.
    upstream: dict
    _send: Callable = field(repr=False, default=lambda kind, msg: None)
    _cancelled: threading.Event = field(repr=False, default_factory=threading.Event)

    def emit(self, text: str) -> None:
        """Streams a piece of output text to whoever watches the run."""
        self._send("delta", worker_pb2.TaskDelta(task_id=self.id, text=str(text)))

    def progress(self, message: str, fraction: Optional[float] = None) -> None:
        """Reports how far the task got (watchers see it; it is not stored)."""
        msg = worker_pb2.TaskProgress(task_id=self.id, message=message)
        if fraction is not None:
            msg.fraction = float(fraction)
        self._send("progress", msg)

    @property
    def cancelled(self) -> bool:
        """True once the server took the task back (its run was cancelled,
        its deadline passed, or its lease ran out): the result is refused."""
        return self._cancelled.is_set()


class Worker:
    """A worker process's connection to a retake server.

    `target` is `host:port` (or `http://host:port`, or `https://host:port`
    for TLS with the system roots or `root_certificates`). With `token`,
    the stream carries `authorization: Bearer TOKEN`. `concurrency` tasks
    run at once, each in a thread of its own (`async def` handlers in an
    event loop of that thread). `name` shows in `retake workers` and in
    each attempt's record; by default the host name and process id.
    """

    def __init__(
        self,
        target: str,
        token: Optional[str] = None,
        *,
        concurrency: int = 1,
        name: Optional[str] = None,
        root_certificates: Optional[bytes] = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}")
        self.target = target
        self.concurrency = concurrency
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self._secure = target.startswith("https://") or root_certificates is not None
        self._address = re.sub(r"^https?://", "", target).rstrip("/")
        self._root_certificates = root_certificates
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._handlers: dict = {}
        self._stopping = threading.Event()
        self._outbox: "queue.Queue" = queue.Queue()
        self._tasks: dict = {}
        # Reports queued and not yet sent (heartbeats aside).
        self._unsent = 0
        self._lock = threading.Lock()
        self._pool: Optional[ThreadPoolExecutor] = None
        self.worker_id: Optional[str] = None

    def agent(self, name: str) -> Callable:
        """Registers the decorated function as the handler of `worker://name`."""

        def register(fn: Callable) -> Callable:
            self._handlers[name] = fn
            return fn

        return register

    def stop(self) -> None:
        """Asks `run` to return once the tasks in hand are done."""
        self._stopping.set()

    def run(self) -> None:
        """Serves tasks until `stop` (or Ctrl-C): connects, reconnects with
        backoff when the connection drops, and on the way out takes no new
        task, lets the tasks in hand finish and delivers their results."""
        if not self._handlers:
            raise ValueError("register at least one agent with @worker.agent(NAME) before run()")
        self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="retake-task")
        failure: list = []
        served = threading.Event()

        def serve() -> None:
            try:
                self._serve()
            except BaseException as e:  # handed to the caller's thread
                failure.append(e)
            finally:
                served.set()

        server = threading.Thread(target=serve, name="retake-worker", daemon=True)
        server.start()
        # An Event, not Thread.join: a join interrupted by Ctrl-C can report
        # the thread finished while it still delivers the last results.
        while not served.is_set():
            try:
                served.wait(0.2)
            except KeyboardInterrupt:
                log.info("retake worker: stopping; finishing the tasks in hand")
                self._stopping.set()
        self._pool.shutdown(wait=True)
        if failure:
            raise failure[0]

    def _serve(self) -> None:
        backoff = 0.5
        while True:
            try:
                self._session()
                backoff = 0.5
            except grpc.RpcError as e:
                if e.code() in _FATAL:
                    raise
                log.warning("retake worker: connection lost (%s); reconnecting in %.1f s", e.code().name, backoff)
            if self._stopping.is_set() and self._idle():
                return
            time.sleep(backoff)
            backoff = min(backoff * 2, 10.0)

    def _idle(self) -> bool:
        with self._lock:
            return not self._tasks and self._unsent == 0

    # --- the stream -------------------------------------------------------------

    def _channel(self) -> grpc.Channel:
        if self._secure:
            creds = grpc.ssl_channel_credentials(root_certificates=self._root_certificates)
            return grpc.secure_channel(self._address, creds)
        return grpc.insecure_channel(self._address)

    def _session(self) -> None:
        """One connection: hello, then tasks in and reports out until the
        stream ends or the worker stops."""
        hello = worker_pb2.WorkRequest(
            hello=worker_pb2.WorkerHello(name=self.name, agents=list(self._handlers), concurrency=self.concurrency)
        )
        closed = threading.Event()

        def requests():
            yield hello
            while not closed.is_set():
                # Stopping, with nothing in hand and all delivered: end
                # the stream; the server then ends its side.
                if self._stopping.is_set() and self._idle():
                    return
                try:
                    item = self._outbox.get(timeout=0.2)
                except queue.Empty:
                    continue
                if item.WhichOneof("kind") != "heartbeat":
                    with self._lock:
                        self._unsent -= 1
                yield item

        with self._channel() as channel:
            stub = worker_pb2_grpc.WorkerServiceStub(channel)
            responses = stub.Work(requests(), metadata=self._metadata)
            heartbeat = None
            try:
                for response in responses:
                    kind = response.WhichOneof("kind")
                    if kind == "welcome":
                        self.worker_id = response.welcome.worker_id
                        every = max(response.welcome.heartbeat_interval_ms, 50) / 1000
                        heartbeat = threading.Thread(target=self._beat, args=(every, closed), daemon=True)
                        heartbeat.start()
                        log.info("retake worker %s: serving %s", response.welcome.name, ", ".join(self._handlers))
                    elif kind == "task":
                        # Stopping: a new task is left to its lease, and
                        # goes to another worker without costing a retry.
                        if not self._stopping.is_set():
                            self._start(response.task)
                    elif kind == "cancelled":
                        with self._lock:
                            task = self._tasks.get(response.cancelled.task_id)
                        if task is not None:
                            task._cancelled.set()
                    elif kind == "refused":
                        log.warning(
                            "retake worker: the server refused a report on task %s: %s",
                            response.refused.task_id,
                            response.refused.reason,
                        )
            finally:
                closed.set()
                responses.cancel()

    def _beat(self, every: float, closed: threading.Event) -> None:
        while not closed.wait(every):
            self._outbox.put(worker_pb2.WorkRequest(heartbeat=worker_pb2.Heartbeat()))

    # --- tasks ------------------------------------------------------------------

    def _send(self, kind: str, message: Any) -> None:
        with self._lock:
            self._unsent += 1
        self._outbox.put(worker_pb2.WorkRequest(**{kind: message}))

    def _start(self, t: worker_pb2.Task) -> None:
        upstream: dict = {}
        for u in t.upstream:
            value: Any = u.content
            if u.media_type == "application/json":
                try:
                    value = json.loads(u.content)
                except ValueError:
                    pass
            upstream.setdefault(u.node_id, {})[u.name] = value
        task = Task(
            id=t.task_id,
            agent=t.agent,
            run_id=t.run_id,
            node_id=t.node_id,
            node_execution_id=t.node_execution_id,
            attempt=t.attempt,
            inputs=json.loads(t.inputs_json or "{}"),
            config=json.loads(t.config_json or "{}"),
            prompt=t.prompt,
            output_names=list(t.output_names),
            deadline=t.deadline.ToDatetime() if t.HasField("deadline") else None,
            upstream=upstream,
            _send=self._send,
        )
        with self._lock:
            self._tasks[task.id] = task
        assert self._pool is not None
        self._pool.submit(self._execute, task)

    def _execute(self, task: Task) -> None:
        try:
            handler = self._handlers.get(task.agent)
            if handler is None:
                raise LookupError(f"this worker has no handler for agent '{task.agent}'")
            value = handler(task)
            if inspect.isawaitable(value):
                value = asyncio.run(_await(value))
            outputs = _outputs(value, task.output_names)
            self._send("result", worker_pb2.TaskResult(task_id=task.id, outputs=outputs))
        except Exception as e:  # noqa: BLE001 - a handler's failure is the task's
            failure = worker_pb2.TaskFailure(
                message=f"{type(e).__name__}: {e}",
                details=traceback.format_exc(),
                permanent=not isinstance(e, TransientError),
            )
            self._send("result", worker_pb2.TaskResult(task_id=task.id, failure=failure))
        finally:
            with self._lock:
                self._tasks.pop(task.id, None)


async def _await(value):
    return await value


def _outputs(value: Any, names: list) -> worker_pb2.TaskOutputs:
    """A handler's return value as the task's outputs: a dict by output name
    (any value), or one plain value for a node with one output. Text stays
    text; anything else is sent as JSON."""
    if isinstance(value, dict) and (len(names) != 1 or names[0] in value):
        pairs = value
    elif len(names) == 1:
        pairs = {names[0]: value}
    else:
        raise TypeError(f"the node has outputs {names}: return a dict with those keys, got {type(value).__name__}")
    if all(isinstance(v, str) for v in pairs.values()):
        return worker_pb2.TaskOutputs(outputs={k: v for k, v in pairs.items()}, media_type="text/plain")
    return worker_pb2.TaskOutputs(
        outputs={k: json.dumps(v) for k, v in pairs.items()}, media_type="application/json"
    )
