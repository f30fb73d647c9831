//! retake.v1.ArtifactService.

use super::convert;
use super::paging::{self, PageTokens};
use crate::engine::Engine;
use crate::error::{EngineError, Reason};
use crate::model::ArtifactOrigin;
use crate::store::RunRef;
use retake::v1 as pb;
use retake::v1::artifact_service_server::ArtifactService;
use tonic::{Request, Response, Status};

pub struct ArtifactApi {
    pub engine: Engine,
}

/// The largest content GetArtifact sends: gRPC clients refuse messages
/// over 4 MiB by default, and the metadata travels with it.
const GET_LIMIT: i64 = 4_000_000;
/// ReadArtifact's chunk.
const CHUNK: usize = 1 << 20;

/// Artifacts a ListArtifacts page holds when the request does not say.
const DEFAULT_PAGE: i32 = 100;

/// ListArtifacts resumes after the artifact it ended at, by its id.
const ARTIFACT_TOKENS: PageTokens = PageTokens {
    method: "ListArtifacts",
    prefix: "",
};

const LINEAGE_TOKENS: PageTokens = PageTokens {
    method: "GetArtifactLineage",
    prefix: "lineage:",
};

fn require_artifact_id(id: &str) -> Result<(), Status> {
    if id.trim().is_empty() {
        return Err(Status::from(
            EngineError::invalid_argument("artifact_id is required")
                .violation("artifact_id", "required"),
        ));
    }
    Ok(())
}

#[tonic::async_trait]
impl ArtifactService for ArtifactApi {
    async fn get_artifact(
        &self,
        req: Request<pb::GetArtifactRequest>,
    ) -> Result<Response<pb::GetArtifactResponse>, Status> {
        let id = req.into_inner().artifact_id;
        require_artifact_id(&id)?;
        let (artifact, content) = self.engine.artifact(&id).await?;
        if artifact.size > GET_LIMIT {
            return Err(Status::from(EngineError::failed_precondition(format!(
                "artifact {} is {} bytes, more than GetArtifact sends in one message ({GET_LIMIT}); \
                 read it with ReadArtifact, which streams it in chunks",
                artifact.id, artifact.size
            ))
            .reason(Reason::LimitExceeded)
            .meta("artifactId", &artifact.id)
            .meta("size", artifact.size.to_string())
            .meta("limit", GET_LIMIT.to_string())));
        }
        Ok(Response::new(pb::GetArtifactResponse {
            artifact: Some(convert::artifact(&artifact)),
            content,
        }))
    }

    type ReadArtifactStream = std::pin::Pin<
        Box<dyn futures::Stream<Item = Result<pb::ReadArtifactResponse, Status>> + Send>,
    >;

    async fn read_artifact(
        &self,
        req: Request<pb::ReadArtifactRequest>,
    ) -> Result<Response<Self::ReadArtifactStream>, Status> {
        let req = req.into_inner();
        require_artifact_id(&req.artifact_id)?;
        if req.offset < 0 || req.limit < 0 {
            return Err(Status::from(
                EngineError::invalid_argument(format!(
                    "offset and limit must be 0 or more, got {} and {}",
                    req.offset, req.limit
                ))
                .violation(
                    if req.offset < 0 { "offset" } else { "limit" },
                    "must be 0 or more",
                ),
            ));
        }
        let (artifact, content) = self.engine.artifact(&req.artifact_id).await?;
        let size = content.len() as i64;
        if req.offset > size || (req.offset == size && size > 0) {
            return Err(Status::from(
                EngineError::out_of_range(format!(
                    "offset {} is past the end of artifact {} ({size} bytes)",
                    req.offset, artifact.id
                ))
                .meta("artifactId", &artifact.id)
                .meta("size", size.to_string()),
            ));
        }
        let end = match req.limit {
            0 => size,
            limit => size.min(req.offset.saturating_add(limit)),
        };
        let (start, end) = (req.offset as usize, end as usize);
        let mut first = Some(convert::artifact(&artifact));
        let mut messages = Vec::new();
        let mut at = start;
        // An empty range is still one message, with the metadata.
        loop {
            let next = (at + CHUNK).min(end);
            messages.push(Ok(pb::ReadArtifactResponse {
                artifact: first.take(),
                offset: at as i64,
                data: content[at..next].to_vec(),
            }));
            at = next;
            if at >= end {
                break;
            }
        }
        Ok(Response::new(Box::pin(futures::stream::iter(messages))))
    }

    async fn list_artifacts(
        &self,
        req: Request<pb::ListArtifactsRequest>,
    ) -> Result<Response<pb::ListArtifactsResponse>, Status> {
        let req = req.into_inner();
        let limit = paging::page_size(req.page_size, DEFAULT_PAGE)?;
        let after: Option<String> = ARTIFACT_TOKENS.decode_for(&req.page_token, &req.run_id)?;
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
        let page = paging::fill(&artifacts, limit, convert::artifact);
        Ok(Response::new(pb::ListArtifactsResponse {
            artifacts: page.items,
            next_page_token: page
                .last
                .map(|a| ARTIFACT_TOKENS.encode_for(&a.id, &req.run_id))
                .unwrap_or_default(),
        }))
    }

    async fn get_artifact_lineage(
        &self,
        req: Request<pb::GetArtifactLineageRequest>,
    ) -> Result<Response<pb::GetArtifactLineageResponse>, Status> {
        let req = req.into_inner();
        require_artifact_id(&req.artifact_id)?;
        let entries = self.engine.lineage(&req.artifact_id, req.max_depth).await?;
        // A lineage never changes once written: its breadth-first order is
        // the same on every call, so a position is a stable cursor.
        let positioned: Vec<(usize, _)> = entries.iter().enumerate().collect();
        let (entries, next_page_token) = paging::page_of_all(
            &positioned,
            req.page_size,
            &req.page_token,
            &LINEAGE_TOKENS,
            &(&req.artifact_id, req.max_depth),
            |(i, _)| format!("{i:010}"),
            |(_, (a, depth))| pb::LineageEntry {
                artifact: Some(convert::artifact(a)),
                depth: *depth,
            },
        )?;
        Ok(Response::new(pb::GetArtifactLineageResponse {
            entries,
            next_page_token,
        }))
    }
}
