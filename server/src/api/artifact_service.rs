//! retake.v1.ArtifactService.

use super::convert;
use crate::engine::Engine;
use crate::error::EngineError;
use crate::model::ArtifactOrigin;
use crate::store::RunRef;
use base64::Engine as _;
use retake::v1 as pb;
use retake::v1::artifact_service_server::ArtifactService;
use tonic::{Request, Response, Status};

pub struct ArtifactApi {
    pub engine: Engine,
}

#[tonic::async_trait]
impl ArtifactService for ArtifactApi {
    async fn get_artifact(
        &self,
        req: Request<pb::GetArtifactRequest>,
    ) -> Result<Response<pb::GetArtifactResponse>, Status> {
        let id = req.into_inner().artifact_id;
        if id.trim().is_empty() {
            return Err(Status::invalid_argument("artifact_id is required"));
        }
        let (artifact, content) = self.engine.artifact(&id).await?;
        Ok(Response::new(pb::GetArtifactResponse {
            artifact: Some(convert::artifact(&artifact)),
            content,
        }))
    }

    async fn list_artifacts(
        &self,
        req: Request<pb::ListArtifactsRequest>,
    ) -> Result<Response<pb::ListArtifactsResponse>, Status> {
        let req = req.into_inner();
        let limit = match req.page_size {
            0 => 100,
            n if n < 0 => {
                return Err(EngineError::InvalidArgument(format!(
                    "page_size must not be negative, got {n}"
                ))
                .into());
            }
            n => n.min(1000) as i64,
        };
        let after = if req.page_token.is_empty() {
            None
        } else {
            let bad = || {
                Status::invalid_argument(
                    "page_token is not a token from a previous ListArtifacts response",
                )
            };
            let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(&req.page_token)
                .map_err(|_| bad())?;
            Some(String::from_utf8(raw).map_err(|_| bad())?)
        };
        // Resolved once, so that "latest" or a prefix names the same run
        // for the listing and for telling its own artifacts from reused ones.
        let run = self.engine.store().find_run(RunRef(&req.run_id)).await?;
        let mut artifacts = self
            .engine
            .artifacts_of_run(&run.id, after.as_deref(), limit + 1)
            .await?;
        // An artifact of an earlier run is one this run reused: it keeps the
        // run that produced it, and is listed as reused.
        for a in artifacts.iter_mut().filter(|a| a.run_id != run.id) {
            a.origin = ArtifactOrigin::Reused;
        }
        let next_page_token = if artifacts.len() as i64 > limit {
            artifacts.truncate(limit as usize);
            artifacts
                .last()
                .map(|a| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&a.id))
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListArtifactsResponse {
            artifacts: artifacts.iter().map(convert::artifact).collect(),
            next_page_token,
        }))
    }

    async fn get_artifact_lineage(
        &self,
        req: Request<pb::GetArtifactLineageRequest>,
    ) -> Result<Response<pb::GetArtifactLineageResponse>, Status> {
        let req = req.into_inner();
        if req.artifact_id.trim().is_empty() {
            return Err(Status::invalid_argument("artifact_id is required"));
        }
        let entries = self.engine.lineage(&req.artifact_id, req.max_depth).await?;
        Ok(Response::new(pb::GetArtifactLineageResponse {
            entries: entries
                .iter()
                .map(|(a, depth)| pb::LineageEntry {
                    artifact: Some(convert::artifact(a)),
                    depth: *depth,
                })
                .collect(),
        }))
    }
}
