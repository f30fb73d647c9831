-- Deleting runs (DeleteRun, retention) removes the contents no row names
-- any more: these indexes make "does anything still name this digest"
-- and "which experiments name this run" lookups instead of scans.
CREATE INDEX artifacts_by_sha256 ON artifacts(sha256);
CREATE INDEX runs_by_workflow_sha256 ON runs(workflow_sha256);
CREATE INDEX runs_by_variables_sha256 ON runs(variables_sha256);
CREATE INDEX experiment_items_by_source ON experiment_items(source_run_id);
CREATE INDEX experiment_items_by_replay ON experiment_items(replay_run_id);
CREATE INDEX runs_by_finished_at ON runs(finished_at) WHERE finished_at IS NOT NULL;
