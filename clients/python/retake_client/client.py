"""A thin layer over the generated stubs: connect (with an optional bearer
token), start a run from YAML text or a file, follow its events, replay,
diff and answer human waits, each in one call. Every generated stub stays
reachable (`client.runs`, `client.artifacts`, `client.workflows`,
`client.experiments`) for the rest.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Optional, TypeVar, Union

import grpc

from .v1 import (
    artifact_pb2,
    artifact_pb2_grpc,
    common_pb2,
    experiment_pb2,
    experiment_pb2_grpc,
    run_pb2,
    run_pb2_grpc,
    workflow_pb2,
    workflow_pb2_grpc,
)

__all__ = ["Client", "RetakeError"]

# grpc.RpcError raised by calls carries code() and details(); this alias lets
# callers write `except retake_client.RetakeError` without importing grpc.
RetakeError = grpc.RpcError

Workflow = Union[str, os.PathLike]
Override = Union[common_pb2.OutputOverride, tuple]

_FINISHED = {
    common_pb2.RUN_STATUS_COMPLETED,
    common_pb2.RUN_STATUS_FAILED,
    common_pb2.RUN_STATUS_CANCELLED,
}
T = TypeVar("T")

# What the server accepts in one message (retake-server's default).
_MESSAGE_LIMITS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
]

# A call that carries a request_id is sent again this many times while the
# server is UNAVAILABLE, after these pauses (seconds).
_RETRY_PAUSES = (0.25, 1.0, 4.0)

_FILE_PROMPT = re.compile(r"""^\s*system_prompt:\s*["']?file://([^"'\s#]+)""", re.MULTILINE)


class Client:
    """A connection to a retake server.

    `target` is `host:port` (or `http://host:port`); `https://host:port`
    connects with TLS using the system roots, or `root_certificates` (PEM).
    With `token`, every call carries `authorization: Bearer TOKEN`.
    `interceptors` (grpc client interceptors) see every call, in order.

    `start_run` and `replay` name each request with a `request_id` and send
    it again while the server is UNAVAILABLE: the server returns the run
    the first attempt stored, so a retry never starts a second run.
    """

    def __init__(
        self,
        target: str,
        token: Optional[str] = None,
        *,
        root_certificates: Optional[bytes] = None,
        options: Optional[list] = None,
        interceptors: Optional[list] = None,
    ) -> None:
        secure = target.startswith("https://")
        address = re.sub(r"^https?://", "", target).rstrip("/")
        # The server's limits, not gRPC's 4 MB default: a run with large
        # variables comes back whole. `options` given win.
        options = [*_MESSAGE_LIMITS, *(options or [])]
        if secure or root_certificates is not None:
            creds = grpc.ssl_channel_credentials(root_certificates=root_certificates)
            self.channel = grpc.secure_channel(address, creds, options=options)
        else:
            self.channel = grpc.insecure_channel(address, options=options)
        if interceptors:
            self.channel = grpc.intercept_channel(self.channel, *interceptors)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self.runs = run_pb2_grpc.RunServiceStub(self.channel)
        self.artifacts = artifact_pb2_grpc.ArtifactServiceStub(self.channel)
        self.workflows = workflow_pb2_grpc.WorkflowServiceStub(self.channel)
        self.experiments = experiment_pb2_grpc.ExperimentServiceStub(self.channel)

    # --- connection ---------------------------------------------------------------

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- runs ---------------------------------------------------------------------

    def start_run(
        self,
        yaml_or_path: Workflow,
        variables: Optional[Mapping[str, str]] = None,
        *,
        request_id: Optional[str] = None,
    ) -> common_pb2.Run:
        """Starts a run and returns it at once (status PENDING or RUNNING).

        `yaml_or_path` is the workflow text, or a path to a YAML/JSON file;
        `file://` system prompts of a file are read relative to it and sent along.
        `request_id` (a fresh UUID when not given) makes the call safe to
        repeat: the same id returns the same run.
        """
        workflow, files = _load_workflow(yaml_or_path)
        req = run_pb2.StartRunRequest(
            workflow=workflow,
            variables=dict(variables or {}),
            files=files,
            request_id=request_id or str(uuid.uuid4()),
        )
        return _retried(lambda: self.runs.StartRun(req, metadata=self._metadata)).run

    def get_run(self, run_id: str, include_nodes: bool = False) -> run_pb2.GetRunResponse:
        """The run (`.run`) and, with `include_nodes`, its node executions (`.nodes`)."""
        req = run_pb2.GetRunRequest(run_id=run_id, include_nodes=include_nodes)
        return self.runs.GetRun(req, metadata=self._metadata)

    def watch(self, run_id: str, after: int = 0, timeout: Optional[float] = None) -> Iterator[common_pb2.Event]:
        """The run's events after sequence `after`, then live ones until the run ends."""
        req = run_pb2.WatchRunRequest(run_id=run_id, after_sequence=after)
        for response in self.runs.WatchRun(req, metadata=self._metadata, timeout=timeout):
            yield response.event

    def wait(self, run_id: str, timeout: Optional[float] = None) -> common_pb2.Run:
        """Blocks until the run is COMPLETED, FAILED or CANCELLED and returns it.

        A run that waits for a human keeps this call waiting until someone
        resolves the wait (see `resolve_wait`).
        """
        run = self.get_run(run_id).run
        if run.status not in _FINISHED:
            for _ in self.watch(run.id, timeout=timeout):
                pass
            run = self.get_run(run.id).run
        return run

    def replay(
        self,
        run_id: str,
        from_: Optional[str] = None,
        swaps: Optional[Mapping[str, str]] = None,
        overrides: Optional[Union[Mapping[str, str], Iterable[Override]]] = None,
        variables: Optional[Mapping[str, str]] = None,
        allow_drift: bool = False,
        workflow: Optional[Workflow] = None,
        *,
        request_id: Optional[str] = None,
    ) -> common_pb2.Run:
        """Forks a finished run (see docs/replay.md) and returns the new run at once.

        `request_id` (a fresh UUID when not given) makes the call safe to
        repeat, as for `start_run`.

        `swaps` maps node id to agent URI. `overrides` maps `node` or
        `node.output` to the value fed to its consumers, or is a list of
        `OutputOverride` messages or `(selector, output, value)` tuples.
        `workflow` (text or path) replaces the source run's snapshot.
        """
        text, files = _load_workflow(workflow) if workflow is not None else ("", {})
        req = run_pb2.ReplayRunRequest(
            run_id=run_id,
            workflow=text,
            files=files,
            variables=dict(variables or {}),
            allow_drift=allow_drift,
            swaps=[common_pb2.AgentSwap(node_id=n, agent=a) for n, a in (swaps or {}).items()],
            overrides=_overrides(overrides),
            request_id=request_id or str(uuid.uuid4()),
            from_node=from_ or "",
        )
        return _retried(lambda: self.runs.ReplayRun(req, metadata=self._metadata)).run

    def read_artifact(self, artifact_id: str, offset: int = 0, limit: int = 0) -> bytes:
        """An artifact's content (or `limit` bytes of it from `offset`; 0:
        to the end), read in chunks: whatever its size, unlike GetArtifact,
        which sends only what fits one message."""
        req = artifact_pb2.ReadArtifactRequest(artifact_id=artifact_id, offset=offset, limit=limit)
        return b"".join(chunk.data for chunk in self.artifacts.ReadArtifact(req, metadata=self._metadata))

    def diff(self, a: str, b: str) -> run_pb2.DiffRunsResponse:
        """Compares two runs node by node (`.nodes`, `.summary`)."""
        return self.runs.DiffRuns(run_pb2.DiffRunsRequest(run_a=a, run_b=b), metadata=self._metadata)

    def cancel(self, run_id: str) -> common_pb2.Run:
        return self.runs.CancelRun(run_pb2.CancelRunRequest(run_id=run_id), metadata=self._metadata).run

    # --- experiments ----------------------------------------------------------------

    def start_experiment(
        self,
        *,
        runs: Optional[Iterable[str]] = None,
        workflow_name: str = "",
        status: int = 0,
        last: int = 0,
        name: str = "",
        from_: Optional[str] = None,
        swaps: Optional[Mapping[str, str]] = None,
        overrides: Optional[Union[Mapping[str, str], Iterable[Override]]] = None,
        variables: Optional[Mapping[str, str]] = None,
        allow_drift: bool = False,
        workflow: Optional[Workflow] = None,
        score_node: str = "",
        concurrency: int = 0,
    ) -> experiment_pb2.Experiment:
        """Replays many runs with one change (see docs/experiments.md) and
        returns the experiment at once; `wait_experiment` follows it.

        The runs are `runs` (ids), or those of `workflow_name` (with
        `status`, a `common_pb2.RUN_STATUS_*`), the most recent `last`
        (default 50). The change takes `replay`'s arguments.
        """
        text, files = _load_workflow(workflow) if workflow is not None else ("", {})
        req = experiment_pb2.StartExperimentRequest(
            name=name,
            selection=experiment_pb2.RunSelection(
                run_ids=list(runs or []), workflow_name=workflow_name, status=status, limit=last
            ),
            change=experiment_pb2.ExperimentChange(
                workflow=text,
                files=files,
                from_node=from_ or "",
                swaps=[common_pb2.AgentSwap(node_id=n, agent=a) for n, a in (swaps or {}).items()],
                overrides=_overrides(overrides),
                variables=dict(variables or {}),
                allow_drift=allow_drift,
            ),
            score_node=score_node,
            concurrency=concurrency,
        )
        return self.experiments.StartExperiment(req, metadata=self._metadata).experiment

    def wait_experiment(self, experiment_id: str, timeout: Optional[float] = None) -> experiment_pb2.GetExperimentResponse:
        """Blocks until the experiment has finished; returns it with its comparison."""
        req = experiment_pb2.WatchExperimentRequest(experiment_id=experiment_id)
        for _ in self.experiments.WatchExperiment(req, metadata=self._metadata, timeout=timeout):
            pass
        return self.get_experiment(experiment_id)

    def get_experiment(self, experiment_id: str, comparison: bool = True) -> experiment_pb2.GetExperimentResponse:
        """The experiment (`.experiment`) and, by default, its `.comparison`."""
        req = experiment_pb2.GetExperimentRequest(experiment_id=experiment_id, include_comparison=comparison)
        return self.experiments.GetExperiment(req, metadata=self._metadata)

    # --- human waits ----------------------------------------------------------------

    def list_waits(self, run_id: str = "") -> list:
        """Pending waits of one run, or of every run when `run_id` is empty."""
        return list(self.runs.ListWaits(run_pb2.ListWaitsRequest(run_id=run_id), metadata=self._metadata).waits)

    def resolve_wait(
        self,
        run_id: str,
        node_id: str = "",
        value: Optional[str] = None,
        approve: Optional[bool] = None,
        feedback: str = "",
    ) -> run_pb2.ResolveWaitResponse:
        """Answers a wait: `value` for human://input, `approve=True/False`
        (with optional `feedback`) for human://approve. `node_id` may be
        left empty when the run has exactly one pending wait."""
        if (value is None) == (approve is None):
            raise ValueError("give either value (input waits) or approve (approval waits)")
        req = run_pb2.ResolveWaitRequest(run_id=run_id, node_id=node_id, feedback=feedback)
        if value is not None:
            req.value = value
        else:
            req.decision = run_pb2.WAIT_DECISION_APPROVE if approve else run_pb2.WAIT_DECISION_REJECT
        return self.runs.ResolveWait(req, metadata=self._metadata)

    # --- workflows --------------------------------------------------------------------

    def validate(
        self, yaml_or_path: Workflow, variables: Optional[Mapping[str, str]] = None
    ) -> workflow_pb2.ValidateWorkflowResponse:
        workflow, files = _load_workflow(yaml_or_path)
        req = workflow_pb2.ValidateWorkflowRequest(workflow=workflow, variables=dict(variables or {}), files=files)
        return self.workflows.ValidateWorkflow(req, metadata=self._metadata)


def _load_workflow(yaml_or_path: Workflow) -> tuple:
    """(workflow text, {PATH: content} of its file:// prompts)."""
    looks_like_path = isinstance(yaml_or_path, os.PathLike) or (
        "\n" not in yaml_or_path and (Path(yaml_or_path).is_file() or yaml_or_path.endswith((".yaml", ".yml", ".json")))
    )
    if looks_like_path:
        path = Path(yaml_or_path)
        text = path.read_text(encoding="utf-8")
        files = {ref: (path.parent / ref).read_text(encoding="utf-8") for ref in _FILE_PROMPT.findall(text)}
        return text, files
    return str(yaml_or_path), {}


def _overrides(overrides: Optional[Union[Mapping[str, str], Iterable[Override]]]) -> list:
    if not overrides:
        return []
    if isinstance(overrides, Mapping):
        out = []
        for key, value in overrides.items():
            selector, _, output = key.partition(".")
            out.append(common_pb2.OutputOverride(selector=selector, output=output, value=value))
        return out
    return [o if isinstance(o, common_pb2.OutputOverride) else common_pb2.OutputOverride(selector=o[0], output=o[1], value=o[2])
            for o in overrides]


def _retried(call: Callable[[], T]) -> T:
    """`call`, made again after a pause while the server is UNAVAILABLE:
    only for calls that carry a request_id, which makes repeating them safe."""
    for pause in _RETRY_PAUSES:
        try:
            return call()
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            time.sleep(pause)
    return call()
