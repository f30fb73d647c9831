//! The one place engine errors become gRPC statuses. Internal details are
//! logged here and never sent to the client.

use crate::error::EngineError;
use tonic::Status;

impl From<EngineError> for Status {
    fn from(err: EngineError) -> Self {
        match err {
            EngineError::InvalidArgument(m) => Status::invalid_argument(m),
            EngineError::NotFound(m) => Status::not_found(m),
            EngineError::FailedPrecondition(m) => Status::failed_precondition(m),
            EngineError::ResourceExhausted(m) => Status::resource_exhausted(m),
            EngineError::OutOfRange(m) => Status::out_of_range(m),
            EngineError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                Status::internal("internal error; see the server log")
            }
        }
    }
}
