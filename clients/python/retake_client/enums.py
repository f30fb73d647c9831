"""Every enum of the contract, importable from one place:

    from retake_client.enums import RunStatus, NodeStatus

    if run.status == RunStatus.RUN_STATUS_FAILED: ...
    RunStatus.Name(run.status)  # "RUN_STATUS_FAILED"

Each is the generated EnumTypeWrapper (values as attributes, `Name`,
`Value`, `items()`).
"""

from .v1.common_pb2 import ArtifactOrigin, EventKind, FailureOrigin, NodeStatus, RunStatus
from .v1.error_pb2 import ErrorReason
from .v1.experiment_pb2 import ExperimentItemStatus, ExperimentStatus
from .v1.run_pb2 import NodePresence, WaitDecision, WaitKind

__all__ = [
    "ArtifactOrigin",
    "ErrorReason",
    "EventKind",
    "ExperimentItemStatus",
    "ExperimentStatus",
    "FailureOrigin",
    "NodePresence",
    "NodeStatus",
    "RunStatus",
    "WaitDecision",
    "WaitKind",
]
