import datetime

from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from . import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WaitDecision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WAIT_DECISION_UNSPECIFIED: _ClassVar[WaitDecision]
    WAIT_DECISION_APPROVE: _ClassVar[WaitDecision]
    WAIT_DECISION_REJECT: _ClassVar[WaitDecision]

class WaitKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WAIT_KIND_UNSPECIFIED: _ClassVar[WaitKind]
    WAIT_KIND_INPUT: _ClassVar[WaitKind]
    WAIT_KIND_APPROVAL: _ClassVar[WaitKind]

class NodePresence(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NODE_PRESENCE_UNSPECIFIED: _ClassVar[NodePresence]
    NODE_PRESENCE_BOTH: _ClassVar[NodePresence]
    NODE_PRESENCE_ONLY_A: _ClassVar[NodePresence]
    NODE_PRESENCE_ONLY_B: _ClassVar[NodePresence]
WAIT_DECISION_UNSPECIFIED: WaitDecision
WAIT_DECISION_APPROVE: WaitDecision
WAIT_DECISION_REJECT: WaitDecision
WAIT_KIND_UNSPECIFIED: WaitKind
WAIT_KIND_INPUT: WaitKind
WAIT_KIND_APPROVAL: WaitKind
NODE_PRESENCE_UNSPECIFIED: NodePresence
NODE_PRESENCE_BOTH: NodePresence
NODE_PRESENCE_ONLY_A: NodePresence
NODE_PRESENCE_ONLY_B: NodePresence

class StartRunRequest(_message.Message):
    __slots__ = ("workflow", "variables", "files", "request_id")
    class VariablesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class FilesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    VARIABLES_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    workflow: str
    variables: _containers.ScalarMap[str, str]
    files: _containers.ScalarMap[str, str]
    request_id: str
    def __init__(self, workflow: _Optional[str] = ..., variables: _Optional[_Mapping[str, str]] = ..., files: _Optional[_Mapping[str, str]] = ..., request_id: _Optional[str] = ...) -> None: ...

class StartRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: _common_pb2.Run
    def __init__(self, run: _Optional[_Union[_common_pb2.Run, _Mapping]] = ...) -> None: ...

class GetRunRequest(_message.Message):
    __slots__ = ("run_id", "include_nodes", "include_workflow")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_NODES_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    include_nodes: bool
    include_workflow: bool
    def __init__(self, run_id: _Optional[str] = ..., include_nodes: _Optional[bool] = ..., include_workflow: _Optional[bool] = ...) -> None: ...

class GetRunResponse(_message.Message):
    __slots__ = ("run", "nodes")
    RUN_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    run: _common_pb2.Run
    nodes: _containers.RepeatedCompositeFieldContainer[_common_pb2.NodeExecution]
    def __init__(self, run: _Optional[_Union[_common_pb2.Run, _Mapping]] = ..., nodes: _Optional[_Iterable[_Union[_common_pb2.NodeExecution, _Mapping]]] = ...) -> None: ...

class ListRunsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "status", "workflow_name", "forked_from", "filter", "order_by")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_NAME_FIELD_NUMBER: _ClassVar[int]
    FORKED_FROM_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    ORDER_BY_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    status: _common_pb2.RunStatus
    workflow_name: str
    forked_from: str
    filter: str
    order_by: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., status: _Optional[_Union[_common_pb2.RunStatus, str]] = ..., workflow_name: _Optional[str] = ..., forked_from: _Optional[str] = ..., filter: _Optional[str] = ..., order_by: _Optional[str] = ...) -> None: ...

class ListRunsResponse(_message.Message):
    __slots__ = ("runs", "next_page_token")
    RUNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[_common_pb2.Run]
    next_page_token: str
    def __init__(self, runs: _Optional[_Iterable[_Union[_common_pb2.Run, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class ReplayRunRequest(_message.Message):
    __slots__ = ("run_id", "workflow", "files", "swaps", "overrides", "variables", "allow_drift", "request_id", "from_node")
    class FilesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    class VariablesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    FROM_FIELD_NUMBER: _ClassVar[int]
    SWAPS_FIELD_NUMBER: _ClassVar[int]
    OVERRIDES_FIELD_NUMBER: _ClassVar[int]
    VARIABLES_FIELD_NUMBER: _ClassVar[int]
    ALLOW_DRIFT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    FROM_NODE_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    workflow: str
    files: _containers.ScalarMap[str, str]
    swaps: _containers.RepeatedCompositeFieldContainer[_common_pb2.AgentSwap]
    overrides: _containers.RepeatedCompositeFieldContainer[_common_pb2.OutputOverride]
    variables: _containers.ScalarMap[str, str]
    allow_drift: bool
    request_id: str
    from_node: str
    def __init__(self, run_id: _Optional[str] = ..., workflow: _Optional[str] = ..., files: _Optional[_Mapping[str, str]] = ..., swaps: _Optional[_Iterable[_Union[_common_pb2.AgentSwap, _Mapping]]] = ..., overrides: _Optional[_Iterable[_Union[_common_pb2.OutputOverride, _Mapping]]] = ..., variables: _Optional[_Mapping[str, str]] = ..., allow_drift: _Optional[bool] = ..., request_id: _Optional[str] = ..., from_node: _Optional[str] = ..., **kwargs) -> None: ...

class ReplayRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: _common_pb2.Run
    def __init__(self, run: _Optional[_Union[_common_pb2.Run, _Mapping]] = ...) -> None: ...

class CancelRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class CancelRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: _common_pb2.Run
    def __init__(self, run: _Optional[_Union[_common_pb2.Run, _Mapping]] = ...) -> None: ...

class ExportRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class ExportRunResponse(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class ImportRunRequest(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class ImportRunResponse(_message.Message):
    __slots__ = ("run_id", "imported_run_ids", "present_run_ids")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    IMPORTED_RUN_IDS_FIELD_NUMBER: _ClassVar[int]
    PRESENT_RUN_IDS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    imported_run_ids: _containers.RepeatedScalarFieldContainer[str]
    present_run_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, run_id: _Optional[str] = ..., imported_run_ids: _Optional[_Iterable[str]] = ..., present_run_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteRunRequest(_message.Message):
    __slots__ = ("run_id", "cascade")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    CASCADE_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    cascade: bool
    def __init__(self, run_id: _Optional[str] = ..., cascade: _Optional[bool] = ...) -> None: ...

class DeleteRunResponse(_message.Message):
    __slots__ = ("deleted_run_ids", "deleted_experiment_ids", "deleted_contents", "deleted_content_bytes")
    DELETED_RUN_IDS_FIELD_NUMBER: _ClassVar[int]
    DELETED_EXPERIMENT_IDS_FIELD_NUMBER: _ClassVar[int]
    DELETED_CONTENTS_FIELD_NUMBER: _ClassVar[int]
    DELETED_CONTENT_BYTES_FIELD_NUMBER: _ClassVar[int]
    deleted_run_ids: _containers.RepeatedScalarFieldContainer[str]
    deleted_experiment_ids: _containers.RepeatedScalarFieldContainer[str]
    deleted_contents: int
    deleted_content_bytes: int
    def __init__(self, deleted_run_ids: _Optional[_Iterable[str]] = ..., deleted_experiment_ids: _Optional[_Iterable[str]] = ..., deleted_contents: _Optional[int] = ..., deleted_content_bytes: _Optional[int] = ...) -> None: ...

class WatchRunRequest(_message.Message):
    __slots__ = ("run_id", "after_sequence")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    after_sequence: int
    def __init__(self, run_id: _Optional[str] = ..., after_sequence: _Optional[int] = ...) -> None: ...

class WatchRunResponse(_message.Message):
    __slots__ = ("event",)
    EVENT_FIELD_NUMBER: _ClassVar[int]
    event: _common_pb2.Event
    def __init__(self, event: _Optional[_Union[_common_pb2.Event, _Mapping]] = ...) -> None: ...

class Wait(_message.Message):
    __slots__ = ("run_id", "node_id", "node_execution_id", "kind", "prompt", "context_json", "create_time", "context")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_EXECUTION_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_JSON_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    node_id: str
    node_execution_id: str
    kind: WaitKind
    prompt: str
    context_json: str
    create_time: _timestamp_pb2.Timestamp
    context: _struct_pb2.Struct
    def __init__(self, run_id: _Optional[str] = ..., node_id: _Optional[str] = ..., node_execution_id: _Optional[str] = ..., kind: _Optional[_Union[WaitKind, str]] = ..., prompt: _Optional[str] = ..., context_json: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., context: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class ResolveWaitRequest(_message.Message):
    __slots__ = ("run_id", "node_id", "value", "decision", "feedback")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    FEEDBACK_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    node_id: str
    value: str
    decision: WaitDecision
    feedback: str
    def __init__(self, run_id: _Optional[str] = ..., node_id: _Optional[str] = ..., value: _Optional[str] = ..., decision: _Optional[_Union[WaitDecision, str]] = ..., feedback: _Optional[str] = ...) -> None: ...

class ResolveWaitResponse(_message.Message):
    __slots__ = ("wait", "run")
    WAIT_FIELD_NUMBER: _ClassVar[int]
    RUN_FIELD_NUMBER: _ClassVar[int]
    wait: Wait
    run: _common_pb2.Run
    def __init__(self, wait: _Optional[_Union[Wait, _Mapping]] = ..., run: _Optional[_Union[_common_pb2.Run, _Mapping]] = ...) -> None: ...

class ListWaitsRequest(_message.Message):
    __slots__ = ("run_id", "page_size", "page_token")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    page_size: int
    page_token: str
    def __init__(self, run_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListWaitsResponse(_message.Message):
    __slots__ = ("waits", "next_page_token")
    WAITS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    waits: _containers.RepeatedCompositeFieldContainer[Wait]
    next_page_token: str
    def __init__(self, waits: _Optional[_Iterable[_Union[Wait, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DiffRunsRequest(_message.Message):
    __slots__ = ("run_a", "run_b")
    RUN_A_FIELD_NUMBER: _ClassVar[int]
    RUN_B_FIELD_NUMBER: _ClassVar[int]
    run_a: str
    run_b: str
    def __init__(self, run_a: _Optional[str] = ..., run_b: _Optional[str] = ...) -> None: ...

class OutputDiff(_message.Message):
    __slots__ = ("name", "artifact_id_a", "artifact_id_b", "changed", "text_diff")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_ID_A_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_ID_B_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    TEXT_DIFF_FIELD_NUMBER: _ClassVar[int]
    name: str
    artifact_id_a: str
    artifact_id_b: str
    changed: bool
    text_diff: str
    def __init__(self, name: _Optional[str] = ..., artifact_id_a: _Optional[str] = ..., artifact_id_b: _Optional[str] = ..., changed: _Optional[bool] = ..., text_diff: _Optional[str] = ...) -> None: ...

class NodeDiff(_message.Message):
    __slots__ = ("node_id", "presence", "status_a", "status_b", "agent_a", "agent_b", "outputs", "latency_ms_a", "latency_ms_b", "usage_a", "usage_b", "changed")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    PRESENCE_FIELD_NUMBER: _ClassVar[int]
    STATUS_A_FIELD_NUMBER: _ClassVar[int]
    STATUS_B_FIELD_NUMBER: _ClassVar[int]
    AGENT_A_FIELD_NUMBER: _ClassVar[int]
    AGENT_B_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_A_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_B_FIELD_NUMBER: _ClassVar[int]
    USAGE_A_FIELD_NUMBER: _ClassVar[int]
    USAGE_B_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    presence: NodePresence
    status_a: _common_pb2.NodeStatus
    status_b: _common_pb2.NodeStatus
    agent_a: str
    agent_b: str
    outputs: _containers.RepeatedCompositeFieldContainer[OutputDiff]
    latency_ms_a: int
    latency_ms_b: int
    usage_a: _common_pb2.Usage
    usage_b: _common_pb2.Usage
    changed: bool
    def __init__(self, node_id: _Optional[str] = ..., presence: _Optional[_Union[NodePresence, str]] = ..., status_a: _Optional[_Union[_common_pb2.NodeStatus, str]] = ..., status_b: _Optional[_Union[_common_pb2.NodeStatus, str]] = ..., agent_a: _Optional[str] = ..., agent_b: _Optional[str] = ..., outputs: _Optional[_Iterable[_Union[OutputDiff, _Mapping]]] = ..., latency_ms_a: _Optional[int] = ..., latency_ms_b: _Optional[int] = ..., usage_a: _Optional[_Union[_common_pb2.Usage, _Mapping]] = ..., usage_b: _Optional[_Union[_common_pb2.Usage, _Mapping]] = ..., changed: _Optional[bool] = ...) -> None: ...

class DiffSummary(_message.Message):
    __slots__ = ("changed", "unchanged", "only_in_a", "only_in_b")
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    UNCHANGED_FIELD_NUMBER: _ClassVar[int]
    ONLY_IN_A_FIELD_NUMBER: _ClassVar[int]
    ONLY_IN_B_FIELD_NUMBER: _ClassVar[int]
    changed: int
    unchanged: int
    only_in_a: int
    only_in_b: int
    def __init__(self, changed: _Optional[int] = ..., unchanged: _Optional[int] = ..., only_in_a: _Optional[int] = ..., only_in_b: _Optional[int] = ...) -> None: ...

class DiffRunsResponse(_message.Message):
    __slots__ = ("run_a", "run_b", "nodes", "summary", "first_divergence", "after_divergence")
    RUN_A_FIELD_NUMBER: _ClassVar[int]
    RUN_B_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_FIELD_NUMBER: _ClassVar[int]
    FIRST_DIVERGENCE_FIELD_NUMBER: _ClassVar[int]
    AFTER_DIVERGENCE_FIELD_NUMBER: _ClassVar[int]
    run_a: _common_pb2.Run
    run_b: _common_pb2.Run
    nodes: _containers.RepeatedCompositeFieldContainer[NodeDiff]
    summary: DiffSummary
    first_divergence: str
    after_divergence: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, run_a: _Optional[_Union[_common_pb2.Run, _Mapping]] = ..., run_b: _Optional[_Union[_common_pb2.Run, _Mapping]] = ..., nodes: _Optional[_Iterable[_Union[NodeDiff, _Mapping]]] = ..., summary: _Optional[_Union[DiffSummary, _Mapping]] = ..., first_divergence: _Optional[str] = ..., after_divergence: _Optional[_Iterable[str]] = ...) -> None: ...

class GetNodeExecutionRequest(_message.Message):
    __slots__ = ("run_id", "step")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    step: str
    def __init__(self, run_id: _Optional[str] = ..., step: _Optional[str] = ...) -> None: ...

class GetNodeExecutionResponse(_message.Message):
    __slots__ = ("node_execution",)
    NODE_EXECUTION_FIELD_NUMBER: _ClassVar[int]
    node_execution: _common_pb2.NodeExecution
    def __init__(self, node_execution: _Optional[_Union[_common_pb2.NodeExecution, _Mapping]] = ...) -> None: ...
