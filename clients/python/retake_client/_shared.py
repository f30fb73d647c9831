"""What the blocking `Client` and the asyncio `AsyncClient` share: how a
target becomes a channel address, how each request is built from the
arguments both take, and how an output's content is decoded."""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Optional, Tuple, Union

from .v1 import artifact_pb2, common_pb2, experiment_pb2, run_pb2, workflow_pb2

Workflow = Union[str, os.PathLike]
Override = Union[common_pb2.OutputOverride, tuple]

FINISHED = frozenset(
    {
        common_pb2.RUN_STATUS_COMPLETED,
        common_pb2.RUN_STATUS_FAILED,
        common_pb2.RUN_STATUS_CANCELLED,
    }
)

# The statuses `wait_for` stops at by name.
STATUS_GROUPS = {
    "finished": FINISHED,
    "waiting": frozenset({common_pb2.RUN_STATUS_WAITING}),
    "running": frozenset({common_pb2.RUN_STATUS_RUNNING}),
}

# Events after which a run's status may have changed.
STATUS_EVENTS = frozenset(
    {
        common_pb2.EVENT_KIND_RUN_STARTED,
        common_pb2.EVENT_KIND_RUN_STATUS_CHANGED,
        common_pb2.EVENT_KIND_RUN_FINISHED,
        common_pb2.EVENT_KIND_WAIT_STARTED,
        common_pb2.EVENT_KIND_WAIT_RESOLVED,
    }
)

# What the server accepts in one message (retake-server's default), not
# gRPC's 4 MB: a run with large variables comes back whole.
MESSAGE_LIMITS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
]

# A call that carries a request_id is sent again this many times while the
# server is UNAVAILABLE, after these pauses (seconds).
RETRY_PAUSES = (0.25, 1.0, 4.0)

_FILE_PROMPT = re.compile(r"""^\s*system_prompt:\s*["']?file://([^"'\s#]+)""", re.MULTILINE)


def address(target: str) -> Tuple[str, bool]:
    """(host:port, whether to use TLS) of `host:port`, `http://host:port`
    or `https://host:port`, the forms the CLI takes."""
    secure = target.startswith("https://")
    return re.sub(r"^https?://", "", target).rstrip("/"), secure


def statuses(until: Union[str, Iterable[Any]]) -> frozenset:
    """RunStatus values from names ("waiting", "finished", "running") or values."""
    if isinstance(until, str):
        until = [until]
    out: set = set()
    for u in until:
        if isinstance(u, str):
            if u not in STATUS_GROUPS:
                raise ValueError(f"unknown status group {u!r}: use one of {sorted(STATUS_GROUPS)}")
            out |= STATUS_GROUPS[u]
        else:
            out.add(int(u))
    return frozenset(out)


def load_workflow(yaml_or_path: Workflow) -> tuple:
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


def override_list(given: Optional[Union[Mapping[str, str], Iterable[Override]]]) -> list:
    if not given:
        return []
    if isinstance(given, Mapping):
        out = []
        for key, value in given.items():
            selector, _, output = key.partition(".")
            out.append(common_pb2.OutputOverride(selector=selector, output=output, value=value))
        return out
    return [
        o if isinstance(o, common_pb2.OutputOverride) else common_pb2.OutputOverride(selector=o[0], output=o[1], value=o[2])
        for o in given
    ]


def swap_list(given: Optional[Mapping[str, str]]) -> list:
    return [common_pb2.AgentSwap(node_id=n, agent=a) for n, a in (given or {}).items()]


def start_run_request(
    yaml_or_path: Workflow, variables: Optional[Mapping[str, str]], request_id: Optional[str]
) -> run_pb2.StartRunRequest:
    workflow, files = load_workflow(yaml_or_path)
    return run_pb2.StartRunRequest(
        workflow=workflow,
        variables=dict(variables or {}),
        files=files,
        request_id=request_id or str(uuid.uuid4()),
    )


def replay_request(
    run_id: str,
    from_: Optional[str],
    swap: Optional[Mapping[str, str]],
    override: Optional[Union[Mapping[str, str], Iterable[Override]]],
    variables: Optional[Mapping[str, str]],
    allow_drift: bool,
    workflow: Optional[Workflow],
    request_id: Optional[str],
) -> run_pb2.ReplayRunRequest:
    text, files = load_workflow(workflow) if workflow is not None else ("", {})
    return run_pb2.ReplayRunRequest(
        run_id=run_id,
        workflow=text,
        files=files,
        variables=dict(variables or {}),
        allow_drift=allow_drift,
        swaps=swap_list(swap),
        overrides=override_list(override),
        request_id=request_id or str(uuid.uuid4()),
        from_node=from_ or "",
    )


def experiment_request(
    *,
    runs: Optional[Iterable[str]],
    workflow_name: str,
    status: common_pb2.RunStatus,
    last: int,
    name: str,
    from_: Optional[str],
    swaps: Optional[Mapping[str, str]],
    overrides: Optional[Union[Mapping[str, str], Iterable[Override]]],
    variables: Optional[Mapping[str, str]],
    allow_drift: bool,
    workflow: Optional[Workflow],
    score_node: str,
    concurrency: int,
) -> experiment_pb2.StartExperimentRequest:
    text, files = load_workflow(workflow) if workflow is not None else ("", {})
    return experiment_pb2.StartExperimentRequest(
        name=name,
        selection=experiment_pb2.RunSelection(
            run_ids=list(runs or []), workflow_name=workflow_name, status=status, limit=last
        ),
        change=experiment_pb2.ExperimentChange(
            workflow=text,
            files=files,
            from_node=from_ or "",
            swaps=swap_list(swaps),
            overrides=override_list(overrides),
            variables=dict(variables or {}),
            allow_drift=allow_drift,
        ),
        score_node=score_node,
        concurrency=concurrency,
    )


def resolve_wait_request(
    run_id: str, node_id: str, value: Optional[str], approve: Optional[bool], feedback: str
) -> run_pb2.ResolveWaitRequest:
    if (value is None) == (approve is None):
        raise ValueError("give either value (input waits) or approve (approval waits)")
    req = run_pb2.ResolveWaitRequest(run_id=run_id, node_id=node_id, feedback=feedback)
    if value is not None:
        req.value = value
    else:
        req.decision = run_pb2.WAIT_DECISION_APPROVE if approve else run_pb2.WAIT_DECISION_REJECT
    return req


def list_runs_request(
    *, status: common_pb2.RunStatus, workflow_name: str, forked_from: str, filter: str, order_by: str, page_size: int, page_token: str
) -> run_pb2.ListRunsRequest:
    return run_pb2.ListRunsRequest(
        status=status,
        workflow_name=workflow_name,
        forked_from=forked_from,
        filter=filter,
        order_by=order_by,
        page_size=page_size,
        page_token=page_token,
    )


def validate_request(yaml_or_path: Workflow, variables: Optional[Mapping[str, str]]) -> workflow_pb2.ValidateWorkflowRequest:
    workflow, files = load_workflow(yaml_or_path)
    return workflow_pb2.ValidateWorkflowRequest(workflow=workflow, variables=dict(variables or {}), files=files)


def read_request(artifact_id: str, offset: int, limit: int) -> artifact_pb2.ReadArtifactRequest:
    return artifact_pb2.ReadArtifactRequest(artifact_id=artifact_id, offset=offset, limit=limit)


def pick_output(node: common_pb2.NodeExecution, artifacts: list, output: Optional[str]) -> common_pb2.Artifact:
    """The artifact of `output` among a node's (`output` may be omitted when
    the node has one)."""
    by_name = {a.name: a for a in artifacts}
    if output is None:
        if len(by_name) != 1:
            raise ValueError(
                f"node {node.node_id!r} has outputs {sorted(by_name)}: name one with output="
            )
        return next(iter(by_name.values()))
    if output not in by_name:
        raise KeyError(f"node {node.node_id!r} has no output {output!r}; it has {sorted(by_name)}")
    return by_name[output]


def decode(media_type: str, content: bytes) -> Any:
    """Content by its media type: JSON parsed, text as str, the rest as bytes."""
    kind = media_type.split(";")[0].strip().lower()
    if kind == "application/json" or kind.endswith("+json"):
        return json.loads(content)
    if kind.startswith("text/"):
        return content.decode("utf-8")
    return content
