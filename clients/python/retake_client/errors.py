"""Errors raised by `Client` and `AsyncClient`, built from the details every
retake error carries (docs/errors.md): the google.rpc.ErrorInfo reason picks
the class, and BadRequest, PreconditionFailure and RetryInfo fill it in.

    try:
        client.replay(run_id, from_="summarize", workflow="changed.yaml")
    except ReplayDrift as e:
        print("changed:", e.nodes)
    except RetakeError as e:
        print(e.code, e.reason, e.message)

Every class is a `grpc.RpcError` too (with `code()` and `details()`), so
code written against the generated stubs keeps working.
"""

from __future__ import annotations

import dataclasses
from typing import Dict, List, Optional, Tuple, Type

import grpc
# googleapis-common-protos ships no type information.
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]

__all__ = [
    "AlreadyExists",
    "ArtifactNotFound",
    "EventsPruned",
    "ExperimentNotFound",
    "FailedPrecondition",
    "FieldViolation",
    "InvalidRequest",
    "LimitExceeded",
    "NodeNotFound",
    "NotFound",
    "PageTokenInvalid",
    "PreconditionViolation",
    "ReplayDrift",
    "ReplayInvalid",
    "RequestIdReused",
    "RetakeError",
    "RunFinished",
    "RunMoved",
    "RunNotExecuting",
    "RunNotFinished",
    "RunNotFound",
    "ServerBusy",
    "StoreCorrupt",
    "StoreUnavailable",
    "Unauthenticated",
    "Unavailable",
    "WaitNotPending",
    "WorkflowInvalid",
    "from_rpc_error",
]

_DETAILS_KEY = "grpc-status-details-bin"


@dataclasses.dataclass(frozen=True)
class FieldViolation:
    """One wrong field: a request field, or for `WorkflowInvalid` the path
    in the workflow document (`nodes.ID.FIELD`)."""

    field: str
    description: str


@dataclasses.dataclass(frozen=True)
class PreconditionViolation:
    """One condition that does not hold: `type` DRIFT, NOT_REUSABLE or
    RUN_STATUS; `subject` the node or run id."""

    type: str
    subject: str
    description: str


class RetakeError(grpc.RpcError):
    """An error status from retake.

    `code` is the grpc.StatusCode, `reason` the ErrorInfo reason (e.g.
    "RUN_NOT_FOUND"; see proto/retake/v1/error.proto), `metadata` its facts
    (`runId`, `nodeIds`...), `violations` and `preconditions` the
    BadRequest and PreconditionFailure entries, `retry_delay` the seconds
    RetryInfo asks to wait (None when retrying does not help).
    """

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        reason: str = "",
        metadata: Optional[Dict[str, str]] = None,
        violations: Tuple[FieldViolation, ...] = (),
        preconditions: Tuple[PreconditionViolation, ...] = (),
        retry_delay: Optional[float] = None,
    ) -> None:
        super().__init__(message)
        self.code_ = code
        self.message = message
        self.reason = reason
        self.metadata: Dict[str, str] = dict(metadata or {})
        self.violations = violations
        self.preconditions = preconditions
        self.retry_delay = retry_delay

    # grpc.RpcError's interface, as the generated stubs' errors have it.
    def code(self) -> grpc.StatusCode:
        return self.code_

    def details(self) -> str:
        return self.message

    @property
    def retryable(self) -> bool:
        """Whether the same call may succeed later."""
        return self.retry_delay is not None

    def __str__(self) -> str:
        reason = f" {self.reason}" if self.reason else ""
        return f"{self.code_.name}{reason}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code_.name}, {self.reason!r}, {self.message!r})"


class InvalidRequest(RetakeError):
    """INVALID_ARGUMENT: see `violations`."""


class WorkflowInvalid(InvalidRequest):
    """The workflow does not validate: one violation per problem, its field
    the path in the document and its description starting `line N: `."""

    @property
    def missing_variables(self) -> List[str]:
        names = self.metadata.get("missingVariables", "")
        return [n for n in names.split(",") if n]


class ReplayInvalid(RetakeError):
    """The replay cannot be planned. `from_node`, when set, is a step to
    replay from that would make it possible."""

    @property
    def from_node(self) -> Optional[str]:
        return self.metadata.get("fromNode") or None


class RequestIdReused(InvalidRequest):
    """The request_id was used by another request; `run_id` is its run."""

    @property
    def run_id(self) -> str:
        return self.metadata.get("runId", "")


class PageTokenInvalid(InvalidRequest):
    """The page token is not from this listing with these filters."""


class NotFound(RetakeError):
    """NOT_FOUND."""


class RunNotFound(NotFound):
    @property
    def run_id(self) -> str:
        return self.metadata.get("runId", "")


class NodeNotFound(NotFound):
    @property
    def node_id(self) -> str:
        return self.metadata.get("nodeId", "")


class ArtifactNotFound(NotFound):
    @property
    def artifact_id(self) -> str:
        return self.metadata.get("artifactId", "")


class ExperimentNotFound(NotFound):
    @property
    def experiment_id(self) -> str:
        return self.metadata.get("experimentId", "")


class FailedPrecondition(RetakeError):
    """FAILED_PRECONDITION: the state of a run stands in the way."""


class ReplayDrift(FailedPrecondition):
    """Nodes the replay would reuse are defined differently than in the
    source run: replay from them, or pass `allow_drift=True`."""

    @property
    def nodes(self) -> List[str]:
        return [p.subject for p in self.preconditions if p.type == "DRIFT"]


class RunNotFinished(FailedPrecondition):
    """Only a finished run can be replayed."""


class RunFinished(FailedPrecondition):
    """The run has finished: it cannot be cancelled or answered."""


class RunNotExecuting(FailedPrecondition):
    """No server executes the run now."""


class WaitNotPending(FailedPrecondition):
    """The node is not waiting for an answer."""


class LimitExceeded(RetakeError):
    """Over a limit of the server (`metadata['limit']`)."""


class ServerBusy(RetakeError):
    """The server runs as many runs as it may; retry after `retry_delay`."""


class EventsPruned(RetakeError):
    """The events asked for were pruned."""


class AlreadyExists(RetakeError):
    """What the request would create exists."""


class Unavailable(RetakeError):
    """The server cannot serve the call now; retry after `retry_delay`."""


class StoreUnavailable(Unavailable):
    """The database refused the write (disk full, I/O); nothing was stored."""


class RunMoved(Unavailable):
    """The run moved to another server; call again."""


class StoreCorrupt(RetakeError):
    """DATA_LOSS: the database holds something retake cannot have written."""


class Unauthenticated(RetakeError):
    """A valid bearer token is required."""


_BY_REASON: Dict[str, Type[RetakeError]] = {
    "INVALID_REQUEST": InvalidRequest,
    "WORKFLOW_INVALID": WorkflowInvalid,
    "REPLAY_INVALID": ReplayInvalid,
    "REQUEST_ID_REUSED": RequestIdReused,
    "PAGE_TOKEN_INVALID": PageTokenInvalid,
    "NOT_FOUND": NotFound,
    "RUN_NOT_FOUND": RunNotFound,
    "NODE_NOT_FOUND": NodeNotFound,
    "ARTIFACT_NOT_FOUND": ArtifactNotFound,
    "EXPERIMENT_NOT_FOUND": ExperimentNotFound,
    "STATE_CONFLICT": FailedPrecondition,
    "RUN_NOT_FINISHED": RunNotFinished,
    "RUN_FINISHED": RunFinished,
    "RUN_NOT_EXECUTING": RunNotExecuting,
    "WAIT_NOT_PENDING": WaitNotPending,
    "REPLAY_DRIFT": ReplayDrift,
    "EVENTS_PRUNED": EventsPruned,
    "LIMIT_EXCEEDED": LimitExceeded,
    "SERVER_BUSY": ServerBusy,
    "ALREADY_EXISTS": AlreadyExists,
    "UNAVAILABLE": Unavailable,
    "STORE_UNAVAILABLE": StoreUnavailable,
    "RUN_MOVED": RunMoved,
    "STORE_CORRUPT": StoreCorrupt,
    "UNAUTHENTICATED": Unauthenticated,
}

# For statuses without details (a proxy's, the transport's) or a reason
# this client does not know yet: the class of the code.
_BY_CODE: Dict[grpc.StatusCode, Type[RetakeError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidRequest,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.RESOURCE_EXHAUSTED: LimitExceeded,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DATA_LOSS: StoreCorrupt,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
}


def from_status(
    code: grpc.StatusCode, message: str, trailing_metadata: Optional[tuple]
) -> RetakeError:
    """The error for a status and its trailers (where the details travel)."""
    status = status_pb2.Status()
    for key, value in trailing_metadata or ():
        if key == _DETAILS_KEY:
            status.ParseFromString(value)
    reason, metadata = "", {}
    violations: List[FieldViolation] = []
    preconditions: List[PreconditionViolation] = []
    retry_delay: Optional[float] = None
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        bad = error_details_pb2.BadRequest()
        failure = error_details_pb2.PreconditionFailure()
        retry = error_details_pb2.RetryInfo()
        if detail.Unpack(info):
            reason, metadata = info.reason, dict(info.metadata)
        elif detail.Unpack(bad):
            violations.extend(FieldViolation(v.field, v.description) for v in bad.field_violations)
        elif detail.Unpack(failure):
            preconditions.extend(PreconditionViolation(v.type, v.subject, v.description) for v in failure.violations)
        elif detail.Unpack(retry):
            retry_delay = retry.retry_delay.ToTimedelta().total_seconds()
    cls = _BY_REASON.get(reason) or _BY_CODE.get(code, RetakeError)
    if retry_delay is None and code == grpc.StatusCode.UNAVAILABLE:
        retry_delay = 1.0
    return cls(
        code,
        message,
        reason=reason,
        metadata=metadata,
        violations=tuple(violations),
        preconditions=tuple(preconditions),
        retry_delay=retry_delay,
    )


def from_rpc_error(err: grpc.RpcError) -> RetakeError:
    """The `RetakeError` for an error a generated stub raised (blocking or
    asyncio); a `RetakeError` is returned as it is."""
    if isinstance(err, RetakeError):
        return err
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    message = err.details() if hasattr(err, "details") else str(err)
    trailers = err.trailing_metadata() if hasattr(err, "trailing_metadata") else None
    return from_status(code, message or "", tuple(trailers or ()))
