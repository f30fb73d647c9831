//! retake.v1.WorkflowService.

use super::convert::SentWorkflow;
use crate::engine::Engine;
use crate::engine::workflow::Issue;
use retake::v1 as pb;
use retake::v1::workflow_service_server::WorkflowService;
use tonic::{Request, Response, Status};

pub struct WorkflowApi {
    pub engine: Engine,
}

fn issue(i: &Issue) -> pb::ValidationIssue {
    pb::ValidationIssue {
        node_id: i.node_id.clone().unwrap_or_default(),
        line: i.line as i32,
        message: i.message.clone(),
    }
}

#[tonic::async_trait]
impl WorkflowService for WorkflowApi {
    async fn validate_workflow(
        &self,
        req: Request<pb::ValidateWorkflowRequest>,
    ) -> Result<Response<pb::ValidateWorkflowResponse>, Status> {
        let req = req.into_inner();
        let sent = SentWorkflow::new(req.workflow, req.files, req.variables);
        let loaded = self
            .engine
            .validate(&sent.source(), req.ignore_missing_variables)
            .await?;
        Ok(Response::new(pb::ValidateWorkflowResponse {
            valid: loaded.errors.is_empty(),
            errors: loaded.errors.iter().map(issue).collect(),
            warnings: loaded.warnings.iter().map(issue).collect(),
            workflow_name: loaded.name.clone(),
            node_count: loaded.node_count as i32,
        }))
    }
}
