"""Python client for the retake gRPC API (package retake.v1).

`retake_client.v1` holds the code generated from proto/retake/v1 with
grpcio-tools (messages, enums, stubs); `Client` makes the common calls one line.
"""

from .client import Client, RetakeError
from .v1 import artifact_pb2, common_pb2, run_pb2, workflow_pb2

__all__ = ["Client", "RetakeError", "artifact_pb2", "common_pb2", "run_pb2", "workflow_pb2"]
