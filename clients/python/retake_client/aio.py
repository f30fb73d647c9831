"""The asyncio client: `Client`'s methods over `grpc.aio`, awaited.

    async with AsyncClient("127.0.0.1:50051") as client:
        run = await client.start_run("workflow.yaml", {"topic": "x"})
        async for event in client.watch(run.id):
            ...
        run = await client.wait_for(run.id, "finished", timeout=60)

Errors are the same `retake_client.errors` classes. Leaving an `async for`
over `watch` early ends the call.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from typing import Any, List, Optional, TypeVar, Union

import grpc
import grpc.aio

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

__all__ = ["AsyncClient"]

T = TypeVar("T")


async def _call(awaitable: Awaitable[T]) -> T:
    try:
        return await awaitable
    except grpc.RpcError as e:
        raise from_rpc_error(e) from e


class AsyncClient:
    """An asyncio connection to a retake server; arguments as `Client`'s.

    The channel is made on construction and closed by `close()` or `async
    with`. `runs`, `artifacts`, `workflows` and `experiments` are the
    generated stubs over it, for the calls this class does not wrap.
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
            self.channel = grpc.aio.secure_channel(address, creds, options=options, interceptors=interceptors)
        else:
            self.channel = grpc.aio.insecure_channel(address, options=options, interceptors=interceptors)
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self.runs = run_pb2_grpc.RunServiceStub(self.channel)
        self.artifacts = artifact_pb2_grpc.ArtifactServiceStub(self.channel)
        self.workflows = workflow_pb2_grpc.WorkflowServiceStub(self.channel)
        self.experiments = experiment_pb2_grpc.ExperimentServiceStub(self.channel)

    # --- connection ---------------------------------------------------------------

    async def close(self) -> None:
        await self.channel.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- runs ---------------------------------------------------------------------

    async def start_run(
        self,
        yaml_or_path: Workflow,
        variables: Optional[Mapping[str, str]] = None,
        *,
        request_id: Optional[str] = None,
    ) -> common_pb2.Run:
        """As `Client.start_run`: retried while UNAVAILABLE under one request_id."""
        req = _shared.start_run_request(yaml_or_path, variables, request_id)
        return (await self._retried(lambda: self.runs.StartRun(req, metadata=self._metadata))).run

    async def get_run(self, run_id: str, include_nodes: bool = False) -> run_pb2.GetRunResponse:
        req = run_pb2.GetRunRequest(run_id=run_id, include_nodes=include_nodes)
        return await _call(self.runs.GetRun(req, metadata=self._metadata))

    async def iter_runs(
        self,
        *,
        status: common_pb2.RunStatus = common_pb2.RUN_STATUS_UNSPECIFIED,
        workflow_name: str = "",
        forked_from: str = "",
        filter: str = "",
        oldest_first: bool = False,
        page_size: int = 200,
    ) -> AsyncIterator[common_pb2.Run]:
        """As `Client.iter_runs`: every matching run, across pages."""
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
            page = await _call(self.runs.ListRuns(req, metadata=self._metadata))
            for run in page.runs:
                yield run
            if not page.next_page_token:
                return
            token = page.next_page_token

    async def watch(
        self, run_id: str, after: int = 0, timeout: Optional[float] = None
    ) -> AsyncIterator[common_pb2.Event]:
        """The run's events after sequence `after`, then live ones until the
        run ends. Leaving the `async for` early cancels the call."""
        req = run_pb2.WatchRunRequest(run_id=run_id, after_sequence=after)
        call = self.runs.WatchRun(req, metadata=self._metadata, timeout=timeout)
        try:
            async for response in call:
                yield response.event
        except grpc.RpcError as e:
            raise from_rpc_error(e) from e
        finally:
            call.cancel()

    async def wait(self, run_id: str, timeout: Optional[float] = None) -> common_pb2.Run:
        """Until the run is COMPLETED, FAILED or CANCELLED."""
        return await self.wait_for(run_id, "finished", timeout=timeout)

    async def wait_for(
        self,
        run_id: str,
        until: Union[str, Iterable[Any]] = ("waiting", "finished"),
        *,
        timeout: Optional[float] = None,
    ) -> common_pb2.Run:
        """As `Client.wait_for`: until the run's status is one of `until`
        ("waiting", "finished", "running" or RunStatus values); TimeoutError
        after `timeout` seconds."""
        wanted = _shared.statuses(until)
        deadline = None if timeout is None else time.monotonic() + timeout
        run = (await self.get_run(run_id)).run
        if run.status in wanted:
            return run
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        try:
            async for event in self.watch(run.id, timeout=remaining):
                if event.kind in _shared.STATUS_EVENTS:
                    run = (await self.get_run(run.id)).run
                    if run.status in wanted:
                        return run
        except RetakeError as e:
            if e.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise TimeoutError(
                    f"run {run.id} is still {common_pb2.RunStatus.Name(run.status)} after {timeout} s"
                ) from None
            raise
        run = (await self.get_run(run.id)).run
        if run.status in wanted:
            return run
        raise ValueError(f"run {run.id} ended {common_pb2.RunStatus.Name(run.status)}, not in {until!r}")

    async def replay(
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
        """As `Client.replay`."""
        req = _shared.replay_request(run_id, from_, swaps, overrides, variables, allow_drift, workflow, request_id)
        return (await self._retried(lambda: self.runs.ReplayRun(req, metadata=self._metadata))).run

    async def read_artifact(self, artifact_id: str, offset: int = 0, limit: int = 0) -> bytes:
        """An artifact's content (or a range), streamed in chunks."""
        return (await self._read(artifact_id, offset, limit))[1]

    async def read_output(self, run_id: str, node_id: str, output: Optional[str] = None) -> Any:
        """As `Client.read_output`: decoded by media type."""
        node = (
            await _call(
                self.runs.GetNodeExecution(
                    run_pb2.GetNodeExecutionRequest(run_id=run_id, step=node_id), metadata=self._metadata
                )
            )
        ).node_execution
        artifacts = [(await self._read(a, 0, 1))[0] for a in node.output_artifact_ids]
        chosen = _shared.pick_output(node, artifacts, output)
        artifact, content = await self._read(chosen.id, 0, 0)
        return _shared.decode(artifact.media_type, content)

    async def _read(self, artifact_id: str, offset: int, limit: int) -> tuple:
        req = _shared.read_request(artifact_id, offset, limit)
        artifact, chunks = None, []
        try:
            async for chunk in self.artifacts.ReadArtifact(req, metadata=self._metadata):
                if chunk.HasField("artifact"):
                    artifact = chunk.artifact
                chunks.append(chunk.data)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from e
        return artifact, b"".join(chunks)

    async def diff(self, a: str, b: str) -> run_pb2.DiffRunsResponse:
        return await _call(self.runs.DiffRuns(run_pb2.DiffRunsRequest(run_a=a, run_b=b), metadata=self._metadata))

    async def cancel(self, run_id: str) -> common_pb2.Run:
        return (await _call(self.runs.CancelRun(run_pb2.CancelRunRequest(run_id=run_id), metadata=self._metadata))).run

    # --- experiments ----------------------------------------------------------------

    async def start_experiment(
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
        """As `Client.start_experiment`."""
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
        return (await _call(self.experiments.StartExperiment(req, metadata=self._metadata))).experiment

    async def wait_experiment(
        self, experiment_id: str, timeout: Optional[float] = None
    ) -> experiment_pb2.GetExperimentResponse:
        req = experiment_pb2.WatchExperimentRequest(experiment_id=experiment_id)
        call = self.experiments.WatchExperiment(req, metadata=self._metadata, timeout=timeout)
        try:
            async for _ in call:
                pass
        except grpc.RpcError as e:
            raise from_rpc_error(e) from e
        return await self.get_experiment(experiment_id)

    async def get_experiment(self, experiment_id: str, comparison: bool = True) -> experiment_pb2.GetExperimentResponse:
        req = experiment_pb2.GetExperimentRequest(experiment_id=experiment_id, include_comparison=comparison)
        return await _call(self.experiments.GetExperiment(req, metadata=self._metadata))

    # --- human waits ----------------------------------------------------------------

    async def list_waits(self, run_id: str = "") -> List[run_pb2.Wait]:
        resp = await _call(self.runs.ListWaits(run_pb2.ListWaitsRequest(run_id=run_id), metadata=self._metadata))
        return list(resp.waits)

    async def resolve_wait(
        self,
        run_id: str,
        node_id: str = "",
        value: Optional[str] = None,
        approve: Optional[bool] = None,
        feedback: str = "",
    ) -> run_pb2.ResolveWaitResponse:
        req = _shared.resolve_wait_request(run_id, node_id, value, approve, feedback)
        return await _call(self.runs.ResolveWait(req, metadata=self._metadata))

    # --- workflows --------------------------------------------------------------------

    async def validate(
        self, yaml_or_path: Workflow, variables: Optional[Mapping[str, str]] = None
    ) -> workflow_pb2.ValidateWorkflowResponse:
        req = _shared.validate_request(yaml_or_path, variables)
        return await _call(self.workflows.ValidateWorkflow(req, metadata=self._metadata))

    # --- internals --------------------------------------------------------------------

    @staticmethod
    async def _retried(call: Callable[[], Awaitable[T]]) -> T:
        for pause in _shared.RETRY_PAUSES:
            try:
                return await _call(call())
            except RetakeError as e:
                if e.code() != grpc.StatusCode.UNAVAILABLE:
                    raise
                await asyncio.sleep(pause)
        return await _call(call())
