import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RunStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUN_STATUS_UNSPECIFIED: _ClassVar[RunStatus]
    RUN_STATUS_PENDING: _ClassVar[RunStatus]
    RUN_STATUS_RUNNING: _ClassVar[RunStatus]
    RUN_STATUS_WAITING: _ClassVar[RunStatus]
    RUN_STATUS_COMPLETED: _ClassVar[RunStatus]
    RUN_STATUS_FAILED: _ClassVar[RunStatus]
    RUN_STATUS_CANCELLED: _ClassVar[RunStatus]

class NodeStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NODE_STATUS_UNSPECIFIED: _ClassVar[NodeStatus]
    NODE_STATUS_PENDING: _ClassVar[NodeStatus]
    NODE_STATUS_RUNNING: _ClassVar[NodeStatus]
    NODE_STATUS_WAITING: _ClassVar[NodeStatus]
    NODE_STATUS_COMPLETED: _ClassVar[NodeStatus]
    NODE_STATUS_FAILED: _ClassVar[NodeStatus]
    NODE_STATUS_SKIPPED: _ClassVar[NodeStatus]
    NODE_STATUS_REUSED: _ClassVar[NodeStatus]
    NODE_STATUS_CANCELLED: _ClassVar[NodeStatus]
    NODE_STATUS_QUEUED: _ClassVar[NodeStatus]

class FailureOrigin(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FAILURE_ORIGIN_UNSPECIFIED: _ClassVar[FailureOrigin]
    FAILURE_ORIGIN_AGENT: _ClassVar[FailureOrigin]
    FAILURE_ORIGIN_TIMEOUT: _ClassVar[FailureOrigin]
    FAILURE_ORIGIN_CANCELLED: _ClassVar[FailureOrigin]
    FAILURE_ORIGIN_DRIFT: _ClassVar[FailureOrigin]
    FAILURE_ORIGIN_INTERNAL: _ClassVar[FailureOrigin]
    FAILURE_ORIGIN_INTERRUPTED: _ClassVar[FailureOrigin]

class ArtifactOrigin(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ARTIFACT_ORIGIN_UNSPECIFIED: _ClassVar[ArtifactOrigin]
    ARTIFACT_ORIGIN_EXECUTED: _ClassVar[ArtifactOrigin]
    ARTIFACT_ORIGIN_REUSED: _ClassVar[ArtifactOrigin]
    ARTIFACT_ORIGIN_OVERRIDE: _ClassVar[ArtifactOrigin]
    ARTIFACT_ORIGIN_HUMAN: _ClassVar[ArtifactOrigin]

class EventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_KIND_UNSPECIFIED: _ClassVar[EventKind]
    EVENT_KIND_RUN_STARTED: _ClassVar[EventKind]
    EVENT_KIND_RUN_STATUS_CHANGED: _ClassVar[EventKind]
    EVENT_KIND_RUN_FINISHED: _ClassVar[EventKind]
    EVENT_KIND_NODE_STARTED: _ClassVar[EventKind]
    EVENT_KIND_NODE_OUTPUT_DELTA: _ClassVar[EventKind]
    EVENT_KIND_NODE_COMPLETED: _ClassVar[EventKind]
    EVENT_KIND_NODE_FAILED: _ClassVar[EventKind]
    EVENT_KIND_NODE_SKIPPED: _ClassVar[EventKind]
    EVENT_KIND_NODE_REUSED: _ClassVar[EventKind]
    EVENT_KIND_WAIT_STARTED: _ClassVar[EventKind]
    EVENT_KIND_WAIT_RESOLVED: _ClassVar[EventKind]
    EVENT_KIND_NODE_RETRYING: _ClassVar[EventKind]
    EVENT_KIND_NODE_CANCELLED: _ClassVar[EventKind]
    EVENT_KIND_NODE_QUEUED: _ClassVar[EventKind]
    EVENT_KIND_NODE_PROGRESS: _ClassVar[EventKind]
RUN_STATUS_UNSPECIFIED: RunStatus
RUN_STATUS_PENDING: RunStatus
RUN_STATUS_RUNNING: RunStatus
RUN_STATUS_WAITING: RunStatus
RUN_STATUS_COMPLETED: RunStatus
RUN_STATUS_FAILED: RunStatus
RUN_STATUS_CANCELLED: RunStatus
NODE_STATUS_UNSPECIFIED: NodeStatus
NODE_STATUS_PENDING: NodeStatus
NODE_STATUS_RUNNING: NodeStatus
NODE_STATUS_WAITING: NodeStatus
NODE_STATUS_COMPLETED: NodeStatus
NODE_STATUS_FAILED: NodeStatus
NODE_STATUS_SKIPPED: NodeStatus
NODE_STATUS_REUSED: NodeStatus
NODE_STATUS_CANCELLED: NodeStatus
NODE_STATUS_QUEUED: NodeStatus
FAILURE_ORIGIN_UNSPECIFIED: FailureOrigin
FAILURE_ORIGIN_AGENT: FailureOrigin
FAILURE_ORIGIN_TIMEOUT: FailureOrigin
FAILURE_ORIGIN_CANCELLED: FailureOrigin
FAILURE_ORIGIN_DRIFT: FailureOrigin
FAILURE_ORIGIN_INTERNAL: FailureOrigin
FAILURE_ORIGIN_INTERRUPTED: FailureOrigin
ARTIFACT_ORIGIN_UNSPECIFIED: ArtifactOrigin
ARTIFACT_ORIGIN_EXECUTED: ArtifactOrigin
ARTIFACT_ORIGIN_REUSED: ArtifactOrigin
ARTIFACT_ORIGIN_OVERRIDE: ArtifactOrigin
ARTIFACT_ORIGIN_HUMAN: ArtifactOrigin
EVENT_KIND_UNSPECIFIED: EventKind
EVENT_KIND_RUN_STARTED: EventKind
EVENT_KIND_RUN_STATUS_CHANGED: EventKind
EVENT_KIND_RUN_FINISHED: EventKind
EVENT_KIND_NODE_STARTED: EventKind
EVENT_KIND_NODE_OUTPUT_DELTA: EventKind
EVENT_KIND_NODE_COMPLETED: EventKind
EVENT_KIND_NODE_FAILED: EventKind
EVENT_KIND_NODE_SKIPPED: EventKind
EVENT_KIND_NODE_REUSED: EventKind
EVENT_KIND_WAIT_STARTED: EventKind
EVENT_KIND_WAIT_RESOLVED: EventKind
EVENT_KIND_NODE_RETRYING: EventKind
EVENT_KIND_NODE_CANCELLED: EventKind
EVENT_KIND_NODE_QUEUED: EventKind
EVENT_KIND_NODE_PROGRESS: EventKind

class Usage(_message.Message):
    __slots__ = ("input_tokens", "output_tokens", "cost_usd")
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    input_tokens: int
    output_tokens: int
    cost_usd: float
    def __init__(self, input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., cost_usd: _Optional[float] = ...) -> None: ...

class NodeCounts(_message.Message):
    __slots__ = ("total", "completed", "failed", "skipped", "reused", "running", "waiting", "pending", "cancelled", "queued")
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    REUSED_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    WAITING_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    total: int
    completed: int
    failed: int
    skipped: int
    reused: int
    running: int
    waiting: int
    pending: int
    cancelled: int
    queued: int
    def __init__(self, total: _Optional[int] = ..., completed: _Optional[int] = ..., failed: _Optional[int] = ..., skipped: _Optional[int] = ..., reused: _Optional[int] = ..., running: _Optional[int] = ..., waiting: _Optional[int] = ..., pending: _Optional[int] = ..., cancelled: _Optional[int] = ..., queued: _Optional[int] = ...) -> None: ...

class RunFailure(_message.Message):
    __slots__ = ("node_id", "message", "origin")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    message: str
    origin: FailureOrigin
    def __init__(self, node_id: _Optional[str] = ..., message: _Optional[str] = ..., origin: _Optional[_Union[FailureOrigin, str]] = ...) -> None: ...

class AgentSwap(_message.Message):
    __slots__ = ("node_id", "agent")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    agent: str
    def __init__(self, node_id: _Optional[str] = ..., agent: _Optional[str] = ...) -> None: ...

class OutputOverride(_message.Message):
    __slots__ = ("selector", "output", "value", "source")
    SELECTOR_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    selector: str
    output: str
    value: str
    source: str
    def __init__(self, selector: _Optional[str] = ..., output: _Optional[str] = ..., value: _Optional[str] = ..., source: _Optional[str] = ...) -> None: ...

class ReplayInfo(_message.Message):
    __slots__ = ("forked_from", "forked_at_step", "roots", "swaps", "overrides", "changed_variables", "allow_drift", "replay_set")
    FORKED_FROM_FIELD_NUMBER: _ClassVar[int]
    FORKED_AT_STEP_FIELD_NUMBER: _ClassVar[int]
    ROOTS_FIELD_NUMBER: _ClassVar[int]
    SWAPS_FIELD_NUMBER: _ClassVar[int]
    OVERRIDES_FIELD_NUMBER: _ClassVar[int]
    CHANGED_VARIABLES_FIELD_NUMBER: _ClassVar[int]
    ALLOW_DRIFT_FIELD_NUMBER: _ClassVar[int]
    REPLAY_SET_FIELD_NUMBER: _ClassVar[int]
    forked_from: str
    forked_at_step: str
    roots: _containers.RepeatedScalarFieldContainer[str]
    swaps: _containers.RepeatedCompositeFieldContainer[AgentSwap]
    overrides: _containers.RepeatedCompositeFieldContainer[OutputOverride]
    changed_variables: _containers.RepeatedScalarFieldContainer[str]
    allow_drift: bool
    replay_set: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, forked_from: _Optional[str] = ..., forked_at_step: _Optional[str] = ..., roots: _Optional[_Iterable[str]] = ..., swaps: _Optional[_Iterable[_Union[AgentSwap, _Mapping]]] = ..., overrides: _Optional[_Iterable[_Union[OutputOverride, _Mapping]]] = ..., changed_variables: _Optional[_Iterable[str]] = ..., allow_drift: _Optional[bool] = ..., replay_set: _Optional[_Iterable[str]] = ...) -> None: ...

class Run(_message.Message):
    __slots__ = ("id", "workflow_name", "workflow_sha256", "status", "variables", "create_time", "start_time", "finish_time", "counts", "usage", "failure", "replay", "workflow_content", "workflow_description")
    class VariablesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_NAME_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_SHA256_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    VARIABLES_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    FINISH_TIME_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    REPLAY_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_CONTENT_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    id: str
    workflow_name: str
    workflow_sha256: str
    status: RunStatus
    variables: _containers.ScalarMap[str, str]
    create_time: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    finish_time: _timestamp_pb2.Timestamp
    counts: NodeCounts
    usage: Usage
    failure: RunFailure
    replay: ReplayInfo
    workflow_content: str
    workflow_description: str
    def __init__(self, id: _Optional[str] = ..., workflow_name: _Optional[str] = ..., workflow_sha256: _Optional[str] = ..., status: _Optional[_Union[RunStatus, str]] = ..., variables: _Optional[_Mapping[str, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finish_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., counts: _Optional[_Union[NodeCounts, _Mapping]] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ..., failure: _Optional[_Union[RunFailure, _Mapping]] = ..., replay: _Optional[_Union[ReplayInfo, _Mapping]] = ..., workflow_content: _Optional[str] = ..., workflow_description: _Optional[str] = ...) -> None: ...

class Attempt(_message.Message):
    __slots__ = ("number", "start_time", "finish_time", "error", "error_origin", "worker")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    FINISH_TIME_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ERROR_ORIGIN_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    number: int
    start_time: _timestamp_pb2.Timestamp
    finish_time: _timestamp_pb2.Timestamp
    error: str
    error_origin: FailureOrigin
    worker: str
    def __init__(self, number: _Optional[int] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finish_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., error: _Optional[str] = ..., error_origin: _Optional[_Union[FailureOrigin, str]] = ..., worker: _Optional[str] = ...) -> None: ...

class NodeExecution(_message.Message):
    __slots__ = ("id", "run_id", "node_id", "status", "agent", "config_json", "prompt", "model", "input_artifact_ids", "output_artifact_ids", "error", "error_origin", "start_time", "finish_time", "latency_ms", "usage", "attempt_count", "attempts", "reused_from_run_id", "blocked_by", "depends_on", "position", "inputs_json", "reused_from_node_execution_id", "latency", "config", "inputs")
    ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    INPUT_ARTIFACT_IDS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_ARTIFACT_IDS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ERROR_ORIGIN_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    FINISH_TIME_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_COUNT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    REUSED_FROM_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    BLOCKED_BY_FIELD_NUMBER: _ClassVar[int]
    DEPENDS_ON_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    INPUTS_JSON_FIELD_NUMBER: _ClassVar[int]
    REUSED_FROM_NODE_EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    LATENCY_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    id: str
    run_id: str
    node_id: str
    status: NodeStatus
    agent: str
    config_json: str
    prompt: str
    model: str
    input_artifact_ids: _containers.RepeatedScalarFieldContainer[str]
    output_artifact_ids: _containers.RepeatedScalarFieldContainer[str]
    error: str
    error_origin: FailureOrigin
    start_time: _timestamp_pb2.Timestamp
    finish_time: _timestamp_pb2.Timestamp
    latency_ms: int
    usage: Usage
    attempt_count: int
    attempts: _containers.RepeatedCompositeFieldContainer[Attempt]
    reused_from_run_id: str
    blocked_by: _containers.RepeatedScalarFieldContainer[str]
    depends_on: _containers.RepeatedScalarFieldContainer[str]
    position: int
    inputs_json: str
    reused_from_node_execution_id: str
    latency: _duration_pb2.Duration
    config: _struct_pb2.Struct
    inputs: _struct_pb2.Struct
    def __init__(self, id: _Optional[str] = ..., run_id: _Optional[str] = ..., node_id: _Optional[str] = ..., status: _Optional[_Union[NodeStatus, str]] = ..., agent: _Optional[str] = ..., config_json: _Optional[str] = ..., prompt: _Optional[str] = ..., model: _Optional[str] = ..., input_artifact_ids: _Optional[_Iterable[str]] = ..., output_artifact_ids: _Optional[_Iterable[str]] = ..., error: _Optional[str] = ..., error_origin: _Optional[_Union[FailureOrigin, str]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finish_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., latency_ms: _Optional[int] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ..., attempt_count: _Optional[int] = ..., attempts: _Optional[_Iterable[_Union[Attempt, _Mapping]]] = ..., reused_from_run_id: _Optional[str] = ..., blocked_by: _Optional[_Iterable[str]] = ..., depends_on: _Optional[_Iterable[str]] = ..., position: _Optional[int] = ..., inputs_json: _Optional[str] = ..., reused_from_node_execution_id: _Optional[str] = ..., latency: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., config: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., inputs: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class Artifact(_message.Message):
    __slots__ = ("id", "run_id", "node_id", "node_execution_id", "name", "media_type", "size_bytes", "sha256", "origin", "derived_from", "create_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    ORIGIN_FIELD_NUMBER: _ClassVar[int]
    DERIVED_FROM_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    run_id: str
    node_id: str
    node_execution_id: str
    name: str
    media_type: str
    size_bytes: int
    sha256: str
    origin: ArtifactOrigin
    derived_from: _containers.RepeatedScalarFieldContainer[str]
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., run_id: _Optional[str] = ..., node_id: _Optional[str] = ..., node_execution_id: _Optional[str] = ..., name: _Optional[str] = ..., media_type: _Optional[str] = ..., size_bytes: _Optional[int] = ..., sha256: _Optional[str] = ..., origin: _Optional[_Union[ArtifactOrigin, str]] = ..., derived_from: _Optional[_Iterable[str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("run_id", "sequence", "kind", "time", "node_id", "run_status", "node_status", "attempt", "message", "delta", "artifact_ids", "latency_ms", "node_ids", "worker", "progress", "latency")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_STATUS_FIELD_NUMBER: _ClassVar[int]
    NODE_STATUS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_IDS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    NODE_IDS_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    sequence: int
    kind: EventKind
    time: _timestamp_pb2.Timestamp
    node_id: str
    run_status: RunStatus
    node_status: NodeStatus
    attempt: int
    message: str
    delta: str
    artifact_ids: _containers.RepeatedScalarFieldContainer[str]
    latency_ms: int
    node_ids: _containers.RepeatedScalarFieldContainer[str]
    worker: str
    progress: float
    latency: _duration_pb2.Duration
    def __init__(self, run_id: _Optional[str] = ..., sequence: _Optional[int] = ..., kind: _Optional[_Union[EventKind, str]] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., node_id: _Optional[str] = ..., run_status: _Optional[_Union[RunStatus, str]] = ..., node_status: _Optional[_Union[NodeStatus, str]] = ..., attempt: _Optional[int] = ..., message: _Optional[str] = ..., delta: _Optional[str] = ..., artifact_ids: _Optional[_Iterable[str]] = ..., latency_ms: _Optional[int] = ..., node_ids: _Optional[_Iterable[str]] = ..., worker: _Optional[str] = ..., progress: _Optional[float] = ..., latency: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...
