"""Python client for the retake gRPC API (package retake.v1).

`retake_client.v1` holds the code generated from proto/retake/v1 with
grpcio-tools (messages, enums, typed stubs); `Client` makes the common calls
one line and `AsyncClient` (retake_client.aio) the same for asyncio;
`retake_client.errors` the exceptions both raise; `retake_client.enums`
every enum; `Worker` serves `worker://NAME` steps with your own functions.
"""

from . import enums, errors
from .aio import AsyncClient
from .client import Client
from .enums import NodeStatus, RunStatus
from .errors import RetakeError
from .v1 import artifact_pb2, common_pb2, error_pb2, experiment_pb2, run_pb2, worker_pb2, workflow_pb2
from .worker import Task, TransientError, Worker

__all__ = [
    "AsyncClient",
    "Client",
    "NodeStatus",
    "RetakeError",
    "RunStatus",
    "Task",
    "TransientError",
    "Worker",
    "artifact_pb2",
    "common_pb2",
    "enums",
    "error_pb2",
    "errors",
    "experiment_pb2",
    "run_pb2",
    "worker_pb2",
    "workflow_pb2",
]
