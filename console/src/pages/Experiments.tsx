// `/experiments` and `/experiments/EXP`: experiments, and one of them as a
// matrix of runs × nodes coloured by what the replay did to each node,
// every cell linking to that pair's diff. A running one updates live.
import { useEffect, useRef, useState } from "preact/hooks";
import {
  Code,
  errorText,
  ExperimentItemStatus,
  experiments,
  ExperimentStatus,
  isCode,
  ms,
  noteError,
  type Experiment,
  type ExperimentChange,
} from "../api";
import { NotFound } from "../components/NotFound";
import { RunBadge } from "../components/Status";
import { cost, duration, shortId, signed, time } from "../format";
import { ErrorBox, useInterval, useLoad } from "../hooks";
import { diffUrl, experimentUrl, runUrl } from "../router";

function statusName(s: ExperimentStatus): string {
  return (ExperimentStatus[s] ?? "unspecified").toLowerCase();
}

function ExperimentBadge({ status }: { status: ExperimentStatus }) {
  const name = statusName(status);
  return <span class={`badge st-${name}`}>{name}</span>;
}

function done(e: Experiment): number {
  const p = e.progress;
  return p ? p.completed + p.failed + p.skipped + p.cancelled : 0;
}

function changeText(c: ExperimentChange | undefined): string {
  if (!c) return "";
  const parts: string[] = [];
  if (c.fromNode) parts.push(`from ${c.fromNode}`);
  for (const s of c.swaps) parts.push(`${s.nodeId} → ${s.agent}`);
  for (const o of c.overrides) parts.push(`${o.selector}${o.output ? `.${o.output}` : ""} = ${o.value.slice(0, 40)}`);
  for (const [k, v] of Object.entries(c.variables)) parts.push(`var ${k} = ${v.slice(0, 40)}`);
  if (c.workflow) parts.push("another workflow");
  if (c.allowDrift) parts.push("drift allowed");
  return parts.join("; ") || "none";
}

export function ExperimentsList() {
  const list = useLoad(() => experiments.listExperiments({ pageSize: 50 }), []);
  useInterval(list.reload, 2000);
  return (
    <section>
      <h1>Experiments</h1>
      <p class="muted">
        One change replayed over many runs: <code>retake experiment run --workflow NAME --agent node=uri</code>.
      </p>
      {list.error ? <ErrorBox error={list.error} /> : null}
      {list.data && list.data.experiments.length === 0 ? <p class="muted">No experiments yet.</p> : null}
      {list.data?.experiments.length ? (
        <div class="table-wrap">
          <table data-testid="experiments">
            <thead>
              <tr>
                <th>Status</th>
                <th>Experiment</th>
                <th>Name</th>
                <th>Change</th>
                <th>Done</th>
                <th>Created</th>
              </tr>
            </thead>
            <tbody>
              {list.data.experiments.map((e) => (
                <tr data-experiment={e.id}>
                  <td>
                    <ExperimentBadge status={e.status} />
                  </td>
                  <td>
                    <a class="mono" href={experimentUrl(e.id)} title={e.id}>
                      {shortId(e.id)}
                    </a>
                  </td>
                  <td>{e.name}</td>
                  <td>{changeText(e.change)}</td>
                  <td>
                    {done(e)}/{e.progress?.total ?? 0}
                  </td>
                  <td>{time(ms(e.createTime))}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      ) : null}
    </section>
  );
}

/** Reloads whenever the experiment changes, until it has finished. */
function useFollow(id: string, running: boolean, reload: () => void) {
  const reloadRef = useRef(reload);
  reloadRef.current = reload;
  useEffect(() => {
    if (!running) return;
    const abort = new AbortController();
    (async () => {
      try {
        for await (const _ of experiments.watchExperiment({ experimentId: id }, { signal: abort.signal })) {
          reloadRef.current();
        }
      } catch (e) {
        if (!abort.signal.aborted) noteError(e);
      }
      if (!abort.signal.aborted) reloadRef.current();
    })();
    return () => abort.abort();
  }, [id, running]);
}

export function ExperimentPage({ id }: { id: string }) {
  const got = useLoad(() => experiments.getExperiment({ experimentId: id, includeComparison: true }), [id]);
  const [actionError, setActionError] = useState<string | null>(null);
  const e = got.data?.experiment;
  useFollow(id, !!e && e.status === ExperimentStatus.RUNNING, got.reload);
  if (got.error && isCode(got.error, Code.NotFound)) return <NotFound what={errorText(got.error)} />;
  if (!e) return got.error ? <ErrorBox error={got.error} /> : <p class="muted">Loading…</p>;
  const c = got.data!.comparison;
  const p = e.progress;
  const nodes = c?.nodes.map((n) => n.nodeId) ?? [];
  const t = c?.totals;

  async function cancel() {
    setActionError(null);
    try {
      await experiments.cancelExperiment({ experimentId: id });
    } catch (err) {
      noteError(err);
      setActionError(errorText(err));
    }
    got.reload();
  }

  return (
    <div class="experiment-page" data-status={statusName(e.status)}>
      <section class="card">
        <h1>
          <ExperimentBadge status={e.status} /> <span class="mono">{e.id}</span> {e.name ? <span>“{e.name}”</span> : null}
        </h1>
        <p>
          <strong>Change:</strong> {changeText(e.change)}
        </p>
        <dl class="facts inline">
          <dt>Runs</dt>
          <dd data-testid="experiment-progress">
            {done(e)}/{p?.total ?? 0} done — {p?.completed ?? 0} completed, {p?.failed ?? 0} failed, {p?.skipped ?? 0} skipped
            {p?.cancelled ? `, ${p.cancelled} cancelled` : ""}
          </dd>
          <dt>Concurrency</dt>
          <dd>{e.concurrency}</dd>
          <dt>Created</dt>
          <dd>{time(ms(e.createTime))}</dd>
        </dl>
        {t ? (
          <dl class="facts inline">
            <dt>Tokens</dt>
            <dd>
              {Number(t.tokensBefore)} → {Number(t.tokensAfter)} ({signed(Number(t.tokensAfter - t.tokensBefore))})
            </dd>
            <dt>Cost</dt>
            <dd>
              {cost(t.costUsdBefore)} → {cost(t.costUsdAfter)}
            </dd>
            <dt>Latency</dt>
            <dd>
              {duration(Number(t.latencyMsBefore))} → {duration(Number(t.latencyMsAfter))}
            </dd>
            <dt>Reused</dt>
            <dd>
              {t.reusedNodes} nodes, saving {Number(t.tokensSaved)} tokens and {cost(t.costUsdSaved)}
            </dd>
          </dl>
        ) : null}
        {c?.score ? (
          <p>
            <strong>Score ({c.score.nodeId}):</strong> {c.score.meanBefore.toFixed(4)} → {c.score.meanAfter.toFixed(4)} over{" "}
            {c.score.pairs} pairs
          </p>
        ) : null}
        {e.status === ExperimentStatus.RUNNING ? (
          <p>
            <button type="button" class="danger" onClick={cancel}>
              Cancel experiment
            </button>
          </p>
        ) : null}
        {actionError ? (
          <div class="error-box" role="alert">
            {actionError}
          </div>
        ) : null}
      </section>
      {c && c.pairs.length ? (
        <section>
          <h2>Runs × nodes</h2>
          <p class="muted">
            Each cell is one node of one replay: <span class="cell-key changed">changed</span>{" "}
            <span class="cell-key unchanged">unchanged</span> <span class="cell-key failed">failed</span>{" "}
            <span class="cell-key reused">reused</span>. A cell opens that run's diff with its source.
          </p>
          <div class="table-wrap">
            <table class="matrix" data-testid="matrix">
              <thead>
                <tr>
                  <th>Source → replay</th>
                  <th>Status</th>
                  {nodes.map((n) => (
                    <th class="node-col" title={n}>
                      {n}
                    </th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {c.pairs.map((pair) => {
                  const url = diffUrl(pair.sourceRunId, pair.replayRunId);
                  return (
                    <tr data-pair={pair.replayRunId}>
                      <td>
                        <a class="mono" href={runUrl(pair.sourceRunId)} title={pair.sourceRunId}>
                          {shortId(pair.sourceRunId)}
                        </a>{" "}
                        →{" "}
                        <a class="mono" href={runUrl(pair.replayRunId)} title={pair.replayRunId}>
                          {shortId(pair.replayRunId)}
                        </a>
                      </td>
                      <td>
                        <RunBadge status={pair.statusBefore} /> → <RunBadge status={pair.statusAfter} />
                      </td>
                      {nodes.map((n) => {
                        const kind = pair.failedNodes.includes(n)
                          ? "failed"
                          : pair.changedNodes.includes(n)
                            ? "changed"
                            : pair.reusedNodes.includes(n)
                              ? "reused"
                              : "unchanged";
                        return (
                          <td class={`cell ${kind}`} data-node={n} data-kind={kind}>
                            <a href={url} aria-label={`${n}: ${kind}; open the diff`} title={`${n}: ${kind}`}>
                              {kind === "changed" ? "Δ" : kind === "failed" ? "✗" : kind === "reused" ? "↺" : "="}
                            </a>
                          </td>
                        );
                      })}
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
          <h2>Per node</h2>
          <div class="table-wrap">
            <table data-testid="node-aggregates">
              <thead>
                <tr>
                  <th>Node</th>
                  <th>Changed</th>
                  <th>Unchanged</th>
                  <th>Failed</th>
                  <th>Newly failed</th>
                  <th>Newly succeeded</th>
                  <th>Reused</th>
                </tr>
              </thead>
              <tbody>
                {c.nodes.map((n) => (
                  <tr data-node={n.nodeId}>
                    <td>{n.nodeId}</td>
                    <td>{n.changed}</td>
                    <td>{n.unchanged}</td>
                    <td>{n.failed}</td>
                    <td>{n.newlyFailed}</td>
                    <td>{n.newlySucceeded}</td>
                    <td>{n.reused}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        </section>
      ) : (
        <p class="muted">No replay has finished yet.</p>
      )}
      {e.items.some((i) => i.status === ExperimentItemStatus.SKIPPED) ? (
        <section>
          <h2>Skipped</h2>
          <ul>
            {e.items
              .filter((i) => i.status === ExperimentItemStatus.SKIPPED)
              .map((i) => (
                <li>
                  <a class="mono" href={runUrl(i.sourceRunId)}>
                    {shortId(i.sourceRunId)}
                  </a>
                  : {i.reason}
                </li>
              ))}
          </ul>
        </section>
      ) : null}
    </div>
  );
}

