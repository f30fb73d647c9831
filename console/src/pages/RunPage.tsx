// `/runs/RUN_ID`: one run — what it is and how it ended (its failure on the
// first screen), its graph, timeline and fork tree, the node panel, and the
// actions: replay, cancel, answer waits, compare with the source run. A run
// still going is followed live with WatchRun from its first event.
import { useEffect, useRef, useState } from "preact/hooks";
import {
  Code,
  EventKind,
  errorText,
  isCode,
  ms,
  noteError,
  NodeStatus,
  RunStatus,
  runs,
  type GetRunResponse,
} from "../api";
import { ForkTree } from "../components/ForkTree";
import { Graph } from "../components/Graph";
import { NodePanel } from "../components/NodePanel";
import { ReplayForm } from "../components/ReplayForm";
import { RunBadge } from "../components/Status";
import { Timeline } from "../components/Timeline";
import { Waits } from "../components/Waits";
import { cost, duration, finishedNodes, RUN_FINISHED, time, tokens } from "../format";
import { ErrorBox, useLoad } from "../hooks";
import { NotFound } from "../components/NotFound";
import { diffUrl, navigate, resolvedRun, runUrl, useLocation, withQuery } from "../router";

/** Refetches at most this often while events stream in. */
const REFRESH_MS = 250;

/** Follows a run's events: streamed text per node as it arrives, and a
 * refetch of the run after any other event. Reconnects after the last
 * event seen, so nothing is missed or repeated. */
function useWatch(runId: string | undefined, live: boolean, refetch: () => void) {
  const [text, setText] = useState<Record<string, string>>({});
  // Why the live stream is down while it reconnects, or null.
  const [broken, setBroken] = useState<string | null>(null);
  const refetchRef = useRef(refetch);
  refetchRef.current = refetch;
  useEffect(() => {
    if (!runId || !live) return;
    const abort = new AbortController();
    let after = 0n;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const schedule = () => {
      timer ??= setTimeout(() => {
        timer = undefined;
        refetchRef.current();
      }, REFRESH_MS);
    };
    (async () => {
      while (!abort.signal.aborted) {
        try {
          for await (const { event } of runs.watchRun({ runId, afterSequence: after }, { signal: abort.signal })) {
            setBroken(null);
            if (!event) continue;
            if (event.sequence > 0n) after = event.sequence;
            if (event.kind === EventKind.NODE_OUTPUT_DELTA) {
              const node = event.nodeId;
              setText((t) => ({ ...t, [node]: (t[node] ?? "") + event.delta }));
            } else {
              schedule();
            }
          }
          schedule();
          return;
        } catch (e) {
          if (abort.signal.aborted) return;
          noteError(e);
          setBroken(errorText(e));
          await new Promise((r) => setTimeout(r, 1000));
        }
      }
    })();
    return () => {
      abort.abort();
      clearTimeout(timer);
    };
  }, [runId, live]);
  return { text, broken };
}

export function RunPage({ runId }: { runId: string }) {
  const { query } = useLocation();
  const loaded = useLoad(() => runs.getRun({ runId, includeNodes: true }), [runId]);
  // The latest answer, kept while a refetch is in flight.
  const [data, setData] = useState<GetRunResponse | undefined>();
  useEffect(() => {
    if (loaded.data) setData(loaded.data);
  }, [loaded.data]);
  const run = data?.run;
  const live = !!run && !RUN_FINISHED.has(run.status);
  const { text: liveText, broken } = useWatch(run?.id, live, loaded.reload);
  const [replayFrom, setReplayFrom] = useState<string | null>(null);
  const [actionError, setActionError] = useState<string | null>(null);

  // `latest` and prefixes resolve to one run: the address names it.
  useEffect(() => {
    if (run && run.id !== runId) {
      resolvedRun(runId, run.id);
      navigate(runUrl(run.id) + location.search, true);
    }
  }, [run?.id]);

  if (loaded.error && isCode(loaded.error, Code.NotFound)) return <NotFound what={errorText(loaded.error)} />;
  if (!data || !run) return loaded.error ? <ErrorBox error={loaded.error} /> : <p class="muted">Loading…</p>;

  const nodes = data.nodes;
  const selectedId = query.get("node");
  const selected = nodes.find((n) => n.nodeId === selectedId) ?? null;
  const errorsOnly = query.get("errors") === "1";
  const failedIds = new Set(nodes.filter((n) => n.status === NodeStatus.FAILED).map((n) => n.nodeId));
  const faded = errorsOnly ? new Set(nodes.filter((n) => !failedIds.has(n.nodeId)).map((n) => n.nodeId)) : undefined;
  const select = (id: string) => navigate(withQuery({ node: id === selectedId ? null : id }), true);
  const start = ms(run.startTime) ?? ms(run.createTime);
  const end = ms(run.finishTime) ?? (live ? Date.now() : null);
  const c = run.counts;
  const done = finishedNodes(c);
  const replay = run.replay;

  async function cancel() {
    setActionError(null);
    try {
      await runs.cancelRun({ runId: run!.id });
      loaded.reload();
    } catch (e) {
      noteError(e);
      setActionError(errorText(e));
    }
  }

  return (
    <div class="run-page" data-run={run.id} data-status={RunStatus[run.status].toLowerCase()}>
      <section class="card run-head">
        <h1>
          <RunBadge status={run.status} /> <span class="mono">{run.id}</span>
        </h1>
        <p class="workflow">
          <strong>{run.workflowName}</strong>
          {run.workflowDescription ? <span class="muted"> — {run.workflowDescription}</span> : null}
        </p>
        <dl class="facts inline">
          <dt>Started</dt>
          <dd>{time(start)}</dd>
          {run.finishTime ? (
            <>
              <dt>Finished</dt>
              <dd>{time(ms(run.finishTime))}</dd>
            </>
          ) : null}
          <dt>Duration</dt>
          <dd>{duration(start !== null && end !== null ? end - start : null)}</dd>
          <dt>Nodes</dt>
          <dd data-testid="node-counts">
            {done}/{c?.total ?? nodes.length}
            {c?.reused ? ` (${c.reused} reused)` : ""}
          </dd>
          <dt>Tokens</dt>
          <dd>{run.usage ? tokens(run.usage.inputTokens + run.usage.outputTokens) : "0"}</dd>
          <dt>Cost</dt>
          <dd>{cost(run.usage?.costUsd ?? 0)}</dd>
        </dl>
        {run.failure ? (
          <div class="failure" role="alert" data-testid="failure">
            <strong>Failed at </strong>
            <a href={withQuery({ node: run.failure.nodeId })}>{run.failure.nodeId || "the run"}</a>:{" "}
            <span class="error-text">{run.failure.message}</span>
          </div>
        ) : null}
        {replay?.forkedFrom ? (
          <div class="replay-info" data-testid="replay-info">
            <p>
              Replay of{" "}
              <a class="mono" href={runUrl(replay.forkedFrom)}>
                {replay.forkedFrom}
              </a>
              {replay.forkedAtStep ? (
                <>
                  {" "}
                  from <strong>{replay.forkedAtStep}</strong>
                </>
              ) : null}
              {" · "}
              <a href={diffUrl(replay.forkedFrom, run.id)} data-testid="compare-source">
                Compare with source
              </a>
            </p>
            <ul class="changes">
              {replay.swaps.map((s) => (
                <li>
                  agent of <strong>{s.nodeId}</strong> → <code>{s.agent}</code>
                </li>
              ))}
              {replay.overrides.map((o) => (
                <li>
                  output of <strong>{o.selector}</strong>
                  {o.output ? `.${o.output}` : ""} overridden{o.source ? ` (from ${o.source})` : ""}:{" "}
                  <code>{o.value.length > 80 ? `${o.value.slice(0, 79)}…` : o.value}</code>
                </li>
              ))}
              {replay.changedVariables.map((v) => (
                <li>
                  variable <strong>{v}</strong> changed
                </li>
              ))}
              {replay.allowDrift ? <li>drift allowed</li> : null}
            </ul>
          </div>
        ) : null}
        <div class="actions">
          {RUN_FINISHED.has(run.status) ? (
            <button type="button" class="primary" onClick={() => setReplayFrom(selectedId ?? "")}>
              Replay…
            </button>
          ) : (
            <button type="button" class="danger" onClick={cancel}>
              Cancel run
            </button>
          )}
          <label class="check">
            <input
              type="checkbox"
              checked={errorsOnly}
              onChange={(e) => navigate(withQuery({ errors: (e.target as HTMLInputElement).checked ? "1" : null }), true)}
            />{" "}
            Errors only
          </label>
        </div>
        {actionError ? (
          <div class="error-box" role="alert">
            {actionError}
          </div>
        ) : null}
        {broken && live ? (
          <p class="error-text" role="status">
            Live updates interrupted ({broken}); reconnecting…
          </p>
        ) : null}
      </section>
      {run.status === RunStatus.WAITING ? (
        <Waits runId={run.id} version={`${run.counts?.waiting}`} onAnswered={loaded.reload} />
      ) : null}
      {replayFrom !== null ? (
        RUN_FINISHED.has(run.status) ? (
          <ReplayForm run={run} nodes={nodes} from={replayFrom} onClose={() => setReplayFrom(null)} />
        ) : (
          <div class="error-box" role="alert">
            Only a finished run can be replayed; this one is {RunStatus[run.status].toLowerCase()}.
          </div>
        )
      ) : null}
      <div class={`run-body${selected ? " with-panel" : ""}`}>
        <div class="run-main">
          <section>
            <h2>Graph</h2>
            <Graph run={run} nodes={nodes} selected={selectedId} onSelect={select} faded={faded} />
          </section>
          <section>
            <h2>Timeline</h2>
            <Timeline
              run={run}
              nodes={errorsOnly ? nodes.filter((n) => failedIds.has(n.nodeId)) : nodes}
              selected={selectedId}
              onSelect={select}
            />
          </section>
          <section>
            <h2>Replays</h2>
            <ForkTree run={run} />
          </section>
        </div>
        {selected ? (
          <NodePanel
            key={selected.nodeId}
            run={run}
            node={selected}
            liveText={selected.status === NodeStatus.RUNNING ? (liveText[selected.nodeId] ?? "") : ""}
            onReplay={(id) => setReplayFrom(id)}
            onClose={() => navigate(withQuery({ node: null }), true)}
          />
        ) : null}
      </div>
    </div>
  );
}

