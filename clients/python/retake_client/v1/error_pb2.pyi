from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from typing import ClassVar as _ClassVar

DESCRIPTOR: _descriptor.FileDescriptor

class ErrorReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERROR_REASON_UNSPECIFIED: _ClassVar[ErrorReason]
    INVALID_REQUEST: _ClassVar[ErrorReason]
    WORKFLOW_INVALID: _ClassVar[ErrorReason]
    REPLAY_INVALID: _ClassVar[ErrorReason]
    REQUEST_ID_REUSED: _ClassVar[ErrorReason]
    PAGE_TOKEN_INVALID: _ClassVar[ErrorReason]
    NOT_FOUND: _ClassVar[ErrorReason]
    RUN_NOT_FOUND: _ClassVar[ErrorReason]
    NODE_NOT_FOUND: _ClassVar[ErrorReason]
    ARTIFACT_NOT_FOUND: _ClassVar[ErrorReason]
    EXPERIMENT_NOT_FOUND: _ClassVar[ErrorReason]
    STATE_CONFLICT: _ClassVar[ErrorReason]
    RUN_NOT_FINISHED: _ClassVar[ErrorReason]
    RUN_FINISHED: _ClassVar[ErrorReason]
    RUN_NOT_EXECUTING: _ClassVar[ErrorReason]
    WAIT_NOT_PENDING: _ClassVar[ErrorReason]
    REPLAY_DRIFT: _ClassVar[ErrorReason]
    OUT_OF_RANGE: _ClassVar[ErrorReason]
    EVENTS_PRUNED: _ClassVar[ErrorReason]
    LIMIT_EXCEEDED: _ClassVar[ErrorReason]
    SERVER_BUSY: _ClassVar[ErrorReason]
    ALREADY_EXISTS: _ClassVar[ErrorReason]
    UNAVAILABLE: _ClassVar[ErrorReason]
    STORE_UNAVAILABLE: _ClassVar[ErrorReason]
    RUN_MOVED: _ClassVar[ErrorReason]
    STORE_CORRUPT: _ClassVar[ErrorReason]
    INTERNAL: _ClassVar[ErrorReason]
    UNAUTHENTICATED: _ClassVar[ErrorReason]
    RUN_IN_USE: _ClassVar[ErrorReason]
ERROR_REASON_UNSPECIFIED: ErrorReason
INVALID_REQUEST: ErrorReason
WORKFLOW_INVALID: ErrorReason
REPLAY_INVALID: ErrorReason
REQUEST_ID_REUSED: ErrorReason
PAGE_TOKEN_INVALID: ErrorReason
NOT_FOUND: ErrorReason
RUN_NOT_FOUND: ErrorReason
NODE_NOT_FOUND: ErrorReason
ARTIFACT_NOT_FOUND: ErrorReason
EXPERIMENT_NOT_FOUND: ErrorReason
STATE_CONFLICT: ErrorReason
RUN_NOT_FINISHED: ErrorReason
RUN_FINISHED: ErrorReason
RUN_NOT_EXECUTING: ErrorReason
WAIT_NOT_PENDING: ErrorReason
REPLAY_DRIFT: ErrorReason
OUT_OF_RANGE: ErrorReason
EVENTS_PRUNED: ErrorReason
LIMIT_EXCEEDED: ErrorReason
SERVER_BUSY: ErrorReason
ALREADY_EXISTS: ErrorReason
UNAVAILABLE: ErrorReason
STORE_UNAVAILABLE: ErrorReason
RUN_MOVED: ErrorReason
STORE_CORRUPT: ErrorReason
INTERNAL: ErrorReason
UNAUTHENTICATED: ErrorReason
RUN_IN_USE: ErrorReason
