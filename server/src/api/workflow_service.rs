//! retake.v1.WorkflowService.

use crate::engine::workflow::Issue;
use crate::engine::{Engine, WorkflowSource};
use retake::v1 as pb;
use retake::v1::workflow_service_server::WorkflowService;
use std::collections::BTreeMap;
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
        let files: BTreeMap<_, _> = req.files.into_iter().collect();
        let variables: BTreeMap<_, _> = req.variables.into_iter().collect();
        let src = WorkflowSource {
            text: &req.workflow,
            files: &files,
            variables: &variables,
        };
        let loaded = self
            .engine
            .validate(&src, req.ignore_missing_variables)
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
