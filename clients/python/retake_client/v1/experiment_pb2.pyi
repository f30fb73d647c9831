import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from . import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ExperimentStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXPERIMENT_STATUS_UNSPECIFIED: _ClassVar[ExperimentStatus]
    EXPERIMENT_STATUS_RUNNING: _ClassVar[ExperimentStatus]
    EXPERIMENT_STATUS_COMPLETED: _ClassVar[ExperimentStatus]
    EXPERIMENT_STATUS_FAILED: _ClassVar[ExperimentStatus]
    EXPERIMENT_STATUS_CANCELLED: _ClassVar[ExperimentStatus]

class ExperimentItemStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXPERIMENT_ITEM_STATUS_UNSPECIFIED: _ClassVar[ExperimentItemStatus]
    EXPERIMENT_ITEM_STATUS_PENDING: _ClassVar[ExperimentItemStatus]
    EXPERIMENT_ITEM_STATUS_RUNNING: _ClassVar[ExperimentItemStatus]
    EXPERIMENT_ITEM_STATUS_COMPLETED: _ClassVar[ExperimentItemStatus]
    EXPERIMENT_ITEM_STATUS_FAILED: _ClassVar[ExperimentItemStatus]
    EXPERIMENT_ITEM_STATUS_CANCELLED: _ClassVar[ExperimentItemStatus]
    EXPERIMENT_ITEM_STATUS_SKIPPED: _ClassVar[ExperimentItemStatus]
EXPERIMENT_STATUS_UNSPECIFIED: ExperimentStatus
EXPERIMENT_STATUS_RUNNING: ExperimentStatus
EXPERIMENT_STATUS_COMPLETED: ExperimentStatus
EXPERIMENT_STATUS_FAILED: ExperimentStatus
EXPERIMENT_STATUS_CANCELLED: ExperimentStatus
EXPERIMENT_ITEM_STATUS_UNSPECIFIED: ExperimentItemStatus
EXPERIMENT_ITEM_STATUS_PENDING: ExperimentItemStatus
EXPERIMENT_ITEM_STATUS_RUNNING: ExperimentItemStatus
EXPERIMENT_ITEM_STATUS_COMPLETED: ExperimentItemStatus
EXPERIMENT_ITEM_STATUS_FAILED: ExperimentItemStatus
EXPERIMENT_ITEM_STATUS_CANCELLED: ExperimentItemStatus
EXPERIMENT_ITEM_STATUS_SKIPPED: ExperimentItemStatus

class RunSelection(_message.Message):
    __slots__ = ("run_ids", "workflow_name", "status", "created_after", "created_before", "forked_from", "limit")
    RUN_IDS_FIELD_NUMBER: _ClassVar[int]
    WORKFLOW_NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AFTER_FIELD_NUMBER: _ClassVar[int]
    CREATED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    FORKED_FROM_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    run_ids: _containers.RepeatedScalarFieldContainer[str]
    workflow_name: str
    status: _common_pb2.RunStatus
    created_after: _timestamp_pb2.Timestamp
    created_before: _timestamp_pb2.Timestamp
    forked_from: str
    limit: int
    def __init__(self, run_ids: _Optional[_Iterable[str]] = ..., workflow_name: _Optional[str] = ..., status: _Optional[_Union[_common_pb2.RunStatus, str]] = ..., created_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., forked_from: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ExperimentChange(_message.Message):
    __slots__ = ("workflow", "files", "from_node", "swaps", "overrides", "variables", "allow_drift")
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
    WORKFLOW_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    FROM_NODE_FIELD_NUMBER: _ClassVar[int]
    SWAPS_FIELD_NUMBER: _ClassVar[int]
    OVERRIDES_FIELD_NUMBER: _ClassVar[int]
    VARIABLES_FIELD_NUMBER: _ClassVar[int]
    ALLOW_DRIFT_FIELD_NUMBER: _ClassVar[int]
    workflow: str
    files: _containers.ScalarMap[str, str]
    from_node: str
    swaps: _containers.RepeatedCompositeFieldContainer[_common_pb2.AgentSwap]
    overrides: _containers.RepeatedCompositeFieldContainer[_common_pb2.OutputOverride]
    variables: _containers.ScalarMap[str, str]
    allow_drift: bool
    def __init__(self, workflow: _Optional[str] = ..., files: _Optional[_Mapping[str, str]] = ..., from_node: _Optional[str] = ..., swaps: _Optional[_Iterable[_Union[_common_pb2.AgentSwap, _Mapping]]] = ..., overrides: _Optional[_Iterable[_Union[_common_pb2.OutputOverride, _Mapping]]] = ..., variables: _Optional[_Mapping[str, str]] = ..., allow_drift: _Optional[bool] = ...) -> None: ...

class StartExperimentRequest(_message.Message):
    __slots__ = ("name", "selection", "change", "concurrency", "score_node")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SELECTION_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    SCORE_NODE_FIELD_NUMBER: _ClassVar[int]
    name: str
    selection: RunSelection
    change: ExperimentChange
    concurrency: int
    score_node: str
    def __init__(self, name: _Optional[str] = ..., selection: _Optional[_Union[RunSelection, _Mapping]] = ..., change: _Optional[_Union[ExperimentChange, _Mapping]] = ..., concurrency: _Optional[int] = ..., score_node: _Optional[str] = ...) -> None: ...

class StartExperimentResponse(_message.Message):
    __slots__ = ("experiment",)
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    experiment: Experiment
    def __init__(self, experiment: _Optional[_Union[Experiment, _Mapping]] = ...) -> None: ...

class ExperimentItem(_message.Message):
    __slots__ = ("source_run_id", "replay_run_id", "status", "reason")
    SOURCE_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    REPLAY_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    source_run_id: str
    replay_run_id: str
    status: ExperimentItemStatus
    reason: str
    def __init__(self, source_run_id: _Optional[str] = ..., replay_run_id: _Optional[str] = ..., status: _Optional[_Union[ExperimentItemStatus, str]] = ..., reason: _Optional[str] = ...) -> None: ...

class ExperimentProgress(_message.Message):
    __slots__ = ("total", "pending", "running", "completed", "failed", "cancelled", "skipped")
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    SKIPPED_FIELD_NUMBER: _ClassVar[int]
    total: int
    pending: int
    running: int
    completed: int
    failed: int
    cancelled: int
    skipped: int
    def __init__(self, total: _Optional[int] = ..., pending: _Optional[int] = ..., running: _Optional[int] = ..., completed: _Optional[int] = ..., failed: _Optional[int] = ..., cancelled: _Optional[int] = ..., skipped: _Optional[int] = ...) -> None: ...

class Experiment(_message.Message):
    __slots__ = ("id", "name", "status", "selection", "change", "concurrency", "score_node", "create_time", "finish_time", "progress", "items")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SELECTION_FIELD_NUMBER: _ClassVar[int]
    CHANGE_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    SCORE_NODE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    FINISH_TIME_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    status: ExperimentStatus
    selection: RunSelection
    change: ExperimentChange
    concurrency: int
    score_node: str
    create_time: _timestamp_pb2.Timestamp
    finish_time: _timestamp_pb2.Timestamp
    progress: ExperimentProgress
    items: _containers.RepeatedCompositeFieldContainer[ExperimentItem]
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., status: _Optional[_Union[ExperimentStatus, str]] = ..., selection: _Optional[_Union[RunSelection, _Mapping]] = ..., change: _Optional[_Union[ExperimentChange, _Mapping]] = ..., concurrency: _Optional[int] = ..., score_node: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finish_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., progress: _Optional[_Union[ExperimentProgress, _Mapping]] = ..., items: _Optional[_Iterable[_Union[ExperimentItem, _Mapping]]] = ...) -> None: ...

class NodeAggregate(_message.Message):
    __slots__ = ("node_id", "changed", "unchanged", "failed", "newly_failed", "newly_succeeded", "reused")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    UNCHANGED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    NEWLY_FAILED_FIELD_NUMBER: _ClassVar[int]
    NEWLY_SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    REUSED_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    changed: int
    unchanged: int
    failed: int
    newly_failed: int
    newly_succeeded: int
    reused: int
    def __init__(self, node_id: _Optional[str] = ..., changed: _Optional[int] = ..., unchanged: _Optional[int] = ..., failed: _Optional[int] = ..., newly_failed: _Optional[int] = ..., newly_succeeded: _Optional[int] = ..., reused: _Optional[int] = ...) -> None: ...

class PairComparison(_message.Message):
    __slots__ = ("source_run_id", "replay_run_id", "status_before", "status_after", "nodes_changed", "first_divergence", "score_before", "score_after", "changed_nodes", "failed_nodes", "reused_nodes")
    SOURCE_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    REPLAY_RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_BEFORE_FIELD_NUMBER: _ClassVar[int]
    STATUS_AFTER_FIELD_NUMBER: _ClassVar[int]
    NODES_CHANGED_FIELD_NUMBER: _ClassVar[int]
    FIRST_DIVERGENCE_FIELD_NUMBER: _ClassVar[int]
    SCORE_BEFORE_FIELD_NUMBER: _ClassVar[int]
    SCORE_AFTER_FIELD_NUMBER: _ClassVar[int]
    CHANGED_NODES_FIELD_NUMBER: _ClassVar[int]
    FAILED_NODES_FIELD_NUMBER: _ClassVar[int]
    REUSED_NODES_FIELD_NUMBER: _ClassVar[int]
    source_run_id: str
    replay_run_id: str
    status_before: _common_pb2.RunStatus
    status_after: _common_pb2.RunStatus
    nodes_changed: int
    first_divergence: str
    score_before: float
    score_after: float
    changed_nodes: _containers.RepeatedScalarFieldContainer[str]
    failed_nodes: _containers.RepeatedScalarFieldContainer[str]
    reused_nodes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, source_run_id: _Optional[str] = ..., replay_run_id: _Optional[str] = ..., status_before: _Optional[_Union[_common_pb2.RunStatus, str]] = ..., status_after: _Optional[_Union[_common_pb2.RunStatus, str]] = ..., nodes_changed: _Optional[int] = ..., first_divergence: _Optional[str] = ..., score_before: _Optional[float] = ..., score_after: _Optional[float] = ..., changed_nodes: _Optional[_Iterable[str]] = ..., failed_nodes: _Optional[_Iterable[str]] = ..., reused_nodes: _Optional[_Iterable[str]] = ...) -> None: ...

class ExperimentTotals(_message.Message):
    __slots__ = ("tokens_before", "tokens_after", "cost_usd_before", "cost_usd_after", "latency_ms_before", "latency_ms_after", "reused_nodes", "tokens_saved", "cost_usd_saved", "latency_ms_saved")
    TOKENS_BEFORE_FIELD_NUMBER: _ClassVar[int]
    TOKENS_AFTER_FIELD_NUMBER: _ClassVar[int]
    COST_USD_BEFORE_FIELD_NUMBER: _ClassVar[int]
    COST_USD_AFTER_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_BEFORE_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_AFTER_FIELD_NUMBER: _ClassVar[int]
    REUSED_NODES_FIELD_NUMBER: _ClassVar[int]
    TOKENS_SAVED_FIELD_NUMBER: _ClassVar[int]
    COST_USD_SAVED_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_SAVED_FIELD_NUMBER: _ClassVar[int]
    tokens_before: int
    tokens_after: int
    cost_usd_before: float
    cost_usd_after: float
    latency_ms_before: int
    latency_ms_after: int
    reused_nodes: int
    tokens_saved: int
    cost_usd_saved: float
    latency_ms_saved: int
    def __init__(self, tokens_before: _Optional[int] = ..., tokens_after: _Optional[int] = ..., cost_usd_before: _Optional[float] = ..., cost_usd_after: _Optional[float] = ..., latency_ms_before: _Optional[int] = ..., latency_ms_after: _Optional[int] = ..., reused_nodes: _Optional[int] = ..., tokens_saved: _Optional[int] = ..., cost_usd_saved: _Optional[float] = ..., latency_ms_saved: _Optional[int] = ...) -> None: ...

class ScoreSummary(_message.Message):
    __slots__ = ("node_id", "pairs", "mean_before", "mean_after", "delta")
    NODE_ID_FIELD_NUMBER: _ClassVar[int]
    PAIRS_FIELD_NUMBER: _ClassVar[int]
    MEAN_BEFORE_FIELD_NUMBER: _ClassVar[int]
    MEAN_AFTER_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    node_id: str
    pairs: int
    mean_before: float
    mean_after: float
    delta: float
    def __init__(self, node_id: _Optional[str] = ..., pairs: _Optional[int] = ..., mean_before: _Optional[float] = ..., mean_after: _Optional[float] = ..., delta: _Optional[float] = ...) -> None: ...

class ExperimentComparison(_message.Message):
    __slots__ = ("nodes", "pairs", "totals", "score")
    NODES_FIELD_NUMBER: _ClassVar[int]
    PAIRS_FIELD_NUMBER: _ClassVar[int]
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    nodes: _containers.RepeatedCompositeFieldContainer[NodeAggregate]
    pairs: _containers.RepeatedCompositeFieldContainer[PairComparison]
    totals: ExperimentTotals
    score: ScoreSummary
    def __init__(self, nodes: _Optional[_Iterable[_Union[NodeAggregate, _Mapping]]] = ..., pairs: _Optional[_Iterable[_Union[PairComparison, _Mapping]]] = ..., totals: _Optional[_Union[ExperimentTotals, _Mapping]] = ..., score: _Optional[_Union[ScoreSummary, _Mapping]] = ...) -> None: ...

class GetExperimentRequest(_message.Message):
    __slots__ = ("experiment_id", "include_comparison")
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_COMPARISON_FIELD_NUMBER: _ClassVar[int]
    experiment_id: str
    include_comparison: bool
    def __init__(self, experiment_id: _Optional[str] = ..., include_comparison: _Optional[bool] = ...) -> None: ...

class GetExperimentResponse(_message.Message):
    __slots__ = ("experiment", "comparison")
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    COMPARISON_FIELD_NUMBER: _ClassVar[int]
    experiment: Experiment
    comparison: ExperimentComparison
    def __init__(self, experiment: _Optional[_Union[Experiment, _Mapping]] = ..., comparison: _Optional[_Union[ExperimentComparison, _Mapping]] = ...) -> None: ...

class ListExperimentsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListExperimentsResponse(_message.Message):
    __slots__ = ("experiments", "next_page_token")
    EXPERIMENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    experiments: _containers.RepeatedCompositeFieldContainer[Experiment]
    next_page_token: str
    def __init__(self, experiments: _Optional[_Iterable[_Union[Experiment, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WatchExperimentRequest(_message.Message):
    __slots__ = ("experiment_id",)
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    experiment_id: str
    def __init__(self, experiment_id: _Optional[str] = ...) -> None: ...

class WatchExperimentResponse(_message.Message):
    __slots__ = ("experiment",)
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    experiment: Experiment
    def __init__(self, experiment: _Optional[_Union[Experiment, _Mapping]] = ...) -> None: ...

class CancelExperimentRequest(_message.Message):
    __slots__ = ("experiment_id",)
    EXPERIMENT_ID_FIELD_NUMBER: _ClassVar[int]
    experiment_id: str
    def __init__(self, experiment_id: _Optional[str] = ...) -> None: ...

class CancelExperimentResponse(_message.Message):
    __slots__ = ("experiment",)
    EXPERIMENT_FIELD_NUMBER: _ClassVar[int]
    experiment: Experiment
    def __init__(self, experiment: _Optional[_Union[Experiment, _Mapping]] = ...) -> None: ...
