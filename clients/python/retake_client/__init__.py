"""Python client for the retake gRPC API (package retake.v1).

`retake_client.v1` holds the code generated from proto/retake/v1 with
grpcio-tools (messages, enums, stubs); `Client` makes the common calls one line;
`Worker` serves `worker://NAME` steps with your own functions.
"""

from .client import Client, RetakeError
from .v1 import artifact_pb2, common_pb2, experiment_pb2, run_pb2, worker_pb2, workflow_pb2
from .worker import Task, TransientError, Worker

__all__ = [
    "Client",
    "RetakeError",
    "Task",
    "TransientError",
    "Worker",
    "artifact_pb2",
    "common_pb2",
    "experiment_pb2",
    "run_pb2",
    "worker_pb2",
    "workflow_pb2",
]
