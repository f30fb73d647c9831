"""A thin layer over the generated stubs: connect (with an optional bearer
token), start a run from YAML text or a file, follow its events, replay,
diff and answer human waits, each in one call; page through runs, read a
node's output, wait for a run to need a human or finish. Every generated
stub stays reachable (`client.runs`, `client.artifacts`, `client.workflows`,
`client.experiments`) for the rest.

Errors are raised as `retake_client.errors.RetakeError` subclasses (see
that module); `AsyncClient` (retake_client.aio) has the same methods for
asyncio.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, List, Optional, TypeVar, Union

import grpc

from . import _shared
from ._shared import Override, Workflow
from .errors import RetakeError, from_rpc_error
from .v1 import (
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

T = TypeVar("T")


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    """Raises what a stub raised as the RetakeError its details describe."""
    try:
        yield
    except grpc.RpcError as e:
        if isinstance(e, RetakeError):
            raise
        raise from_rpc_error(e) from e


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
        address, secure = _shared.address(target)
        options = [*_shared.MESSAGE_LIMITS, *(options or [])]
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
        req = _shared.start_run_request(yaml_or_path, variables, request_id)
        return self._retried(lambda: self.runs.StartRun(req, metadata=self._metadata)).run

    def get_run(self, run_id: str, include_nodes: bool = False) -> run_pb2.GetRunResponse:
        """The run (`.run`) and, with `include_nodes`, its node executions (`.nodes`)."""
        req = run_pb2.GetRunRequest(run_id=run_id, include_nodes=include_nodes)
        with _errors():
            return self.runs.GetRun(req, metadata=self._metadata)

    def iter_runs(
        self,
        *,
        status: common_pb2.RunStatus = common_pb2.RUN_STATUS_UNSPECIFIED,
        workflow_name: str = "",
        forked_from: str = "",
        filter: str = "",
        oldest_first: bool = False,
        page_size: int = 200,
    ) -> Iterator[common_pb2.Run]:
        """Every run that matches, newest first (or `oldest_first`), across
        as many ListRuns pages as it takes. `filter` is ListRuns' filter,
        e.g. 'status = FAILED AND create_time >= "2026-11-01T00:00:00Z"'."""
        token = ""
        while True:
            req = _shared.list_runs_request(
                status=status,
                workflow_name=workflow_name,
                forked_from=forked_from,
                filter=filter,
                order_by="create_time asc" if oldest_first else "",
                page_size=page_size,
                page_token=token,
            )
            with _errors():
                page = self.runs.ListRuns(req, metadata=self._metadata)
            yield from page.runs
            if not page.next_page_token:
                return
            token = page.next_page_token

    def watch(self, run_id: str, after: int = 0, timeout: Optional[float] = None) -> Iterator[common_pb2.Event]:
        """The run's events after sequence `after`, then live ones until the run ends."""
        req = run_pb2.WatchRunRequest(run_id=run_id, after_sequence=after)
        with _errors():
            for response in self.runs.WatchRun(req, metadata=self._metadata, timeout=timeout):
                yield response.event

    def wait(self, run_id: str, timeout: Optional[float] = None) -> common_pb2.Run:
        """Blocks until the run is COMPLETED, FAILED or CANCELLED and returns it.

        A run that waits for a human keeps this call waiting until someone
        resolves the wait (see `resolve_wait`); `wait_for` can stop there.
        """
        return self.wait_for(run_id, "finished", timeout=timeout)

    def wait_for(
        self,
        run_id: str,
        until: Union[str, Iterable[Any]] = ("waiting", "finished"),
        *,
        timeout: Optional[float] = None,
    ) -> common_pb2.Run:
        """Blocks until the run's status is one of `until` and returns the run.

        `until` takes "waiting" (a human must answer), "finished"
        (completed, failed or cancelled), "running", or RunStatus values.
        Raises TimeoutError after `timeout` seconds.
        """
        wanted = _shared.statuses(until)
        deadline = None if timeout is None else time.monotonic() + timeout
        run = self.get_run(run_id).run
        if run.status in wanted:
            return run
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            for event in self.watch(run.id, timeout=remaining):
                if event.kind in _shared.STATUS_EVENTS:
                    run = self.get_run(run.id).run
                    if run.status in wanted:
                        return run
        except RetakeError as e:
            if e.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise TimeoutError(f"run {run.id} is still {common_pb2.RunStatus.Name(run.status)} after {timeout} s") from None
            raise
        run = self.get_run(run.id).run
        if run.status in wanted:
            return run
        raise ValueError(f"run {run.id} ended {common_pb2.RunStatus.Name(run.status)}, not in {until!r}")

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
        req = _shared.replay_request(run_id, from_, swaps, overrides, variables, allow_drift, workflow, request_id)
        return self._retried(lambda: self.runs.ReplayRun(req, metadata=self._metadata)).run

    def read_artifact(self, artifact_id: str, offset: int = 0, limit: int = 0) -> bytes:
        """An artifact's content (or `limit` bytes of it from `offset`; 0:
        to the end), read in chunks: whatever its size, unlike GetArtifact,
        which sends only what fits one message."""
        return self._read(artifact_id, offset, limit)[1]

    def read_output(self, run_id: str, node_id: str, output: Optional[str] = None) -> Any:
        """A node's output, decoded by its media type: JSON parsed, text as
        str, anything else as bytes. `output` names one of several."""
        with _errors():
            node = self.runs.GetNodeExecution(
                run_pb2.GetNodeExecutionRequest(run_id=run_id, step=node_id), metadata=self._metadata
            ).node_execution
        # ReadArtifact's first message carries the metadata: one byte of
        # each output tells its name.
        artifacts = [self._read(a, 0, 1)[0] for a in node.output_artifact_ids]
        chosen = _shared.pick_output(node, artifacts, output)
        artifact, content = self._read(chosen.id, 0, 0)
        return _shared.decode(artifact.media_type, content)

    def _read(self, artifact_id: str, offset: int, limit: int) -> tuple:
        req = _shared.read_request(artifact_id, offset, limit)
        artifact, chunks = None, []
        with _errors():
            for chunk in self.artifacts.ReadArtifact(req, metadata=self._metadata):
                if chunk.HasField("artifact"):
                    artifact = chunk.artifact
                chunks.append(chunk.data)
        return artifact, b"".join(chunks)

    def diff(self, a: str, b: str) -> run_pb2.DiffRunsResponse:
        """Compares two runs node by node (`.nodes`, `.summary`)."""
        with _errors():
            return self.runs.DiffRuns(run_pb2.DiffRunsRequest(run_a=a, run_b=b), metadata=self._metadata)

    def cancel(self, run_id: str) -> common_pb2.Run:
        with _errors():
            return self.runs.CancelRun(run_pb2.CancelRunRequest(run_id=run_id), metadata=self._metadata).run

    # --- experiments ----------------------------------------------------------------

    def start_experiment(
        self,
        *,
        runs: Optional[Iterable[str]] = None,
        workflow_name: str = "",
        status: common_pb2.RunStatus = common_pb2.RUN_STATUS_UNSPECIFIED,
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
        req = _shared.experiment_request(
            runs=runs,
            workflow_name=workflow_name,
            status=status,
            last=last,
            name=name,
            from_=from_,
            swaps=swaps,
            overrides=overrides,
            variables=variables,
            allow_drift=allow_drift,
            workflow=workflow,
            score_node=score_node,
            concurrency=concurrency,
        )
        with _errors():
            return self.experiments.StartExperiment(req, metadata=self._metadata).experiment

    def wait_experiment(self, experiment_id: str, timeout: Optional[float] = None) -> experiment_pb2.GetExperimentResponse:
        """Blocks until the experiment has finished; returns it with its comparison."""
        req = experiment_pb2.WatchExperimentRequest(experiment_id=experiment_id)
        with _errors():
            for _ in self.experiments.WatchExperiment(req, metadata=self._metadata, timeout=timeout):
                pass
        return self.get_experiment(experiment_id)

    def get_experiment(self, experiment_id: str, comparison: bool = True) -> experiment_pb2.GetExperimentResponse:
        """The experiment (`.experiment`) and, by default, its `.comparison`."""
        req = experiment_pb2.GetExperimentRequest(experiment_id=experiment_id, include_comparison=comparison)
        with _errors():
            return self.experiments.GetExperiment(req, metadata=self._metadata)

    # --- human waits ----------------------------------------------------------------

    def list_waits(self, run_id: str = "") -> List[run_pb2.Wait]:
        """Pending waits of one run, or of every run when `run_id` is empty, oldest first."""
        with _errors():
            resp = self.runs.ListWaits(run_pb2.ListWaitsRequest(run_id=run_id), metadata=self._metadata)
        return list(resp.waits)

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
        req = _shared.resolve_wait_request(run_id, node_id, value, approve, feedback)
        with _errors():
            return self.runs.ResolveWait(req, metadata=self._metadata)

    # --- workflows --------------------------------------------------------------------

    def validate(
        self, yaml_or_path: Workflow, variables: Optional[Mapping[str, str]] = None
    ) -> workflow_pb2.ValidateWorkflowResponse:
        req = _shared.validate_request(yaml_or_path, variables)
        with _errors():
            return self.workflows.ValidateWorkflow(req, metadata=self._metadata)

    # --- internals --------------------------------------------------------------------

    @staticmethod
    def _retried(call: Callable[[], T]) -> T:
        """`call`, made again after a pause while the server is UNAVAILABLE:
        only for calls that carry a request_id, which makes repeating them safe."""
        for pause in _shared.RETRY_PAUSES:
            try:
                with _errors():
                    return call()
            except RetakeError as e:
                if e.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
                time.sleep(pause)
        with _errors():
            return call()

