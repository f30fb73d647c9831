// `/`: every run, newest first, filtered by status and workflow (kept in
// the URL), paged, and refreshed while the first page is on screen so new
// runs appear. Page tokens only lead forward, so the address keeps the
// token of every page on the way (`page`, repeated): Previous drops the
// last one.
import { useState } from "preact/hooks";
import { runs, ms, RunStatus, type Run } from "../api";
import { RunBadge } from "../components/Status";
import { duration, finishedNodes, RUN_FINISHED, runStatusName, shortId, time } from "../format";
import { ErrorBox, useInterval, useLoad } from "../hooks";
import { navigate, runUrl, useLocation, withQuery } from "../router";

const STATUSES = [
  RunStatus.RUNNING,
  RunStatus.WAITING,
  RunStatus.COMPLETED,
  RunStatus.FAILED,
  RunStatus.CANCELLED,
  RunStatus.PENDING,
];

const PAGE_SIZE = 25;

/** The address of the list with `pages` as its trail of page tokens. */
function pagesUrl(pages: string[]): string {
  const q = new URLSearchParams(location.search);
  q.delete("page");
  for (const token of pages) q.append("page", token);
  const s = q.toString();
  return location.pathname + (s ? `?${s}` : "");
}

function runDuration(r: Run): number | null {
  const start = ms(r.startTime) ?? ms(r.createTime);
  // A run still going (waiting for a person included) has lasted until now.
  const end = ms(r.finishTime) ?? (RUN_FINISHED.has(r.status) ? null : Date.now());
  return start !== null && end !== null ? end - start : null;
}

export function RunsList() {
  const { query } = useLocation();
  const status = query.get("status") ?? "";
  const workflow = query.get("workflow") ?? "";
  const pages = query.getAll("page");
  const page = pages.at(-1) ?? "";
  const statusValue = STATUSES.find((s) => runStatusName(s) === status) ?? RunStatus.UNSPECIFIED;
  const list = useLoad(
    () => runs.listRuns({ pageSize: PAGE_SIZE, pageToken: page, status: statusValue, workflowName: workflow }),
    [status, workflow, page],
  );
  // New runs show up on the first page without a reload.
  useInterval(list.reload, page ? null : 2000);
  const [workflowInput, setWorkflowInput] = useState(workflow);

  return (
    <section>
      <h1>Runs</h1>
      <form
        class="filters"
        role="search"
        onSubmit={(e) => {
          e.preventDefault();
          navigate(withQuery({ workflow: workflowInput.trim(), page: null }));
        }}
      >
        <label>
          Status{" "}
          <select
            name="status"
            value={status}
            onChange={(e) => navigate(withQuery({ status: (e.target as HTMLSelectElement).value, page: null }))}
          >
            <option value="">any</option>
            {STATUSES.map((s) => (
              <option value={runStatusName(s)}>{runStatusName(s)}</option>
            ))}
          </select>
        </label>
        <label>
          Workflow{" "}
          <input
            name="workflow"
            value={workflowInput}
            placeholder="any"
            onInput={(e) => setWorkflowInput((e.target as HTMLInputElement).value)}
          />
        </label>
        <button type="submit">Filter</button>
        {status || workflow ? (
          <a class="clear" href="/">
            clear
          </a>
        ) : null}
      </form>
      {list.error ? <ErrorBox error={list.error} /> : null}
      {list.data ? (
        <RunsTable runs={list.data.runs} />
      ) : list.loading ? (
        <p class="muted">Loading…</p>
      ) : null}
      <nav class="pager" aria-label="pages">
        {pages.length > 1 ? (
          <a class="button" href={pagesUrl([])}>
            ⇤ Newest
          </a>
        ) : null}
        {pages.length ? (
          <a class="button" rel="prev" href={pagesUrl(pages.slice(0, -1))}>
            ← Previous
          </a>
        ) : null}
        {list.data?.nextPageToken ? (
          <a class="button" rel="next" href={pagesUrl([...pages, list.data.nextPageToken])}>
            Next →
          </a>
        ) : null}
      </nav>
    </section>
  );
}

function RunsTable({ runs: rows }: { runs: Run[] }) {
  if (rows.length === 0) return <p class="muted">No runs match.</p>;
  return (
    <div class="table-wrap">
      <table class="runs" data-testid="runs">
        <thead>
          <tr>
            <th>Status</th>
            <th>Run</th>
            <th>Workflow</th>
            <th>Started</th>
            <th>Duration</th>
            <th>Nodes</th>
            <th>Forked from</th>
            <th>
              <span class="sr-only">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => {
            const c = r.counts;
            const done = finishedNodes(c);
            return (
              <tr data-run={r.id} class={`run-row st-row-${runStatusName(r.status)}`}>
                <td>
                  <RunBadge status={r.status} />
                </td>
                <td>
                  <a class="mono" href={runUrl(r.id)} title={r.id}>
                    {shortId(r.id)}
                  </a>
                </td>
                <td>{r.workflowName}</td>
                <td>{time(ms(r.startTime) ?? ms(r.createTime))}</td>
                <td>{duration(runDuration(r))}</td>
                <td>
                  {done}/{c?.total ?? 0}
                </td>
                <td>
                  {r.replay?.forkedFrom ? (
                    <a class="mono" href={runUrl(r.replay.forkedFrom)} title={r.replay.forkedFrom}>
                      {shortId(r.replay.forkedFrom)}
                    </a>
                  ) : (
                    <span class="muted">–</span>
                  )}
                </td>
                <td>
                  {r.status === RunStatus.FAILED ? (
                    <a class="debug" href={runUrl(r.id, r.failure?.nodeId)}>
                      debug
                    </a>
                  ) : null}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}
