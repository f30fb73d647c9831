// `/runs/A/diff/B`: two runs side by side, node by node — status, agent,
// latency, tokens and cost with their deltas, changed outputs as text
// diffs — and where they part: the first divergence, with everything
// downstream of it marked.
import { Code, errorText, isCode, NodePresence, NodeStatus, runs, type NodeDiff, type Usage } from "../api";
import { NotFound } from "../components/NotFound";
import { RunBadge } from "../components/Status";
import { cost, duration, nodeStatusName, shortId, signed } from "../format";
import { ErrorBox, useLoad } from "../hooks";
import { navigate, runUrl, useLocation, withQuery } from "../router";

const FILTERS = ["all", "changed", "failed"] as const;
type Filter = (typeof FILTERS)[number];

const tokensOf = (u?: Usage) => (u ? Number(u.inputTokens + u.outputTokens) : 0);

function TextDiff({ text }: { text: string }) {
  return (
    <pre class="text-diff">
      {text.split("\n").map((line) => {
        const cls =
          line.startsWith("+++") || line.startsWith("---")
            ? "dh"
            : line.startsWith("+")
              ? "add"
              : line.startsWith("-")
                ? "del"
                : line.startsWith("@@")
                  ? "hunk"
                  : "";
        return <span class={cls}>{line + "\n"}</span>;
      })}
    </pre>
  );
}

function Delta({ a, b, fmt }: { a: number; b: number; fmt: (n: number) => string }) {
  if (a === b) return <span class="muted">{fmt(a)}</span>;
  return (
    <span>
      {fmt(a)} → {fmt(b)}{" "}
      <span class={b > a ? "worse" : "better"}>({signed(Math.round((b - a) * 1e6) / 1e6)})</span>
    </span>
  );
}

function change(n: NodeDiff): string {
  if (n.presence === NodePresence.ONLY_A) return "only in A";
  if (n.presence === NodePresence.ONLY_B) return "only in B";
  return n.changed ? "changed" : "unchanged";
}

export function DiffPage({ runA, runB }: { runA: string; runB: string }) {
  const { query } = useLocation();
  const filter: Filter = (FILTERS as readonly string[]).includes(query.get("show") ?? "")
    ? (query.get("show") as Filter)
    : "all";
  const diff = useLoad(() => runs.diffRuns({ runA, runB }), [runA, runB]);
  if (diff.error && isCode(diff.error, Code.NotFound)) return <NotFound what={errorText(diff.error)} />;
  if (!diff.data) return diff.error ? <ErrorBox error={diff.error} /> : <p class="muted">Loading…</p>;
  const d = diff.data;
  const first = d.firstDivergence;
  const after = new Set(d.afterDivergence);
  const failed = (n: NodeDiff) => n.statusA === NodeStatus.FAILED || n.statusB === NodeStatus.FAILED;
  const shown = d.nodes.filter((n) => filter === "all" || (filter === "changed" ? n.changed : failed(n)));
  const sum = (f: (n: NodeDiff) => number) => d.nodes.reduce((s, n) => s + f(n), 0);
  const s = d.summary;

  return (
    <div class="diff-page">
      <section class="card">
        <h1>Compare runs</h1>
        <table class="diff-runs">
          <tbody>
            {(
              [
                ["A", d.runA],
                ["B", d.runB],
              ] as const
            ).map(([label, r]) =>
              r ? (
                <tr>
                  <th>{label}</th>
                  <td>
                    <RunBadge status={r.status} />
                  </td>
                  <td>
                    <a class="mono" href={runUrl(r.id)}>
                      {r.id}
                    </a>
                  </td>
                  <td>{r.workflowName}</td>
                  <td class="muted">
                    {r.replay?.forkedFrom
                      ? `replay of ${r.replay.forkedFrom === d.runA?.id ? "A" : shortId(r.replay.forkedFrom)}${r.replay.forkedAtStep ? ` from ${r.replay.forkedAtStep}` : ""}`
                      : ""}
                  </td>
                </tr>
              ) : null,
            )}
          </tbody>
        </table>
        <p data-testid="diff-summary">
          {s?.changed ?? 0} changed, {s?.unchanged ?? 0} unchanged, {s?.onlyInA ?? 0} only in A, {s?.onlyInB ?? 0} only in B
        </p>
        <dl class="facts inline">
          <dt>Latency</dt>
          <dd>
            <Delta a={sum((n) => Number(n.latencyMsA))} b={sum((n) => Number(n.latencyMsB))} fmt={(v) => duration(v)} />
          </dd>
          <dt>Tokens</dt>
          <dd>
            <Delta a={sum((n) => tokensOf(n.usageA))} b={sum((n) => tokensOf(n.usageB))} fmt={(v) => v.toLocaleString("en-US")} />
          </dd>
          <dt>Cost</dt>
          <dd>
            <Delta a={sum((n) => n.usageA?.costUsd ?? 0)} b={sum((n) => n.usageB?.costUsd ?? 0)} fmt={cost} />
          </dd>
        </dl>
        {first ? (
          <p class="divergence" data-testid="first-divergence">
            First divergence: <a href={`#node-${first}`}>{first}</a>
            {after.size ? `; ${after.size} node${after.size === 1 ? "" : "s"} downstream of it` : "; nothing downstream of it"}
          </p>
        ) : (
          <p class="divergence none" data-testid="first-divergence">
            No divergence: every node's outputs are the same in A and B.
          </p>
        )}
        <nav class="filters" aria-label="show">
          {FILTERS.map((f) => (
            <a
              href={withQuery({ show: f === "all" ? null : f })}
              aria-current={f === filter ? "true" : undefined}
              class={f === filter ? "button current" : "button"}
              onClick={(e) => {
                e.preventDefault();
                navigate(withQuery({ show: f === "all" ? null : f }), true);
              }}
            >
              {f}
            </a>
          ))}
        </nav>
      </section>
      <div class="table-wrap">
        <table class="diff" data-testid="diff">
          <thead>
            <tr>
              <th>Node</th>
              <th>Change</th>
              <th>Status A → B</th>
              <th>Agent</th>
              <th>Latency</th>
              <th>Tokens</th>
              <th>Cost</th>
            </tr>
          </thead>
          <tbody>
            {shown.map((n) => {
              const mark = n.nodeId === first ? "first-divergence" : after.has(n.nodeId) ? "downstream" : "";
              return (
                <>
                  <tr id={`node-${n.nodeId}`} data-node={n.nodeId} class={`${n.changed ? "changed" : "same"} ${mark}`}>
                    <td>
                      <strong>{n.nodeId}</strong>
                      {mark === "first-divergence" ? <span class="tag diverges">first divergence</span> : null}
                      {mark === "downstream" ? <span class="tag">downstream</span> : null}
                    </td>
                    <td>{change(n)}</td>
                    <td>
                      <span class={`st-text-${nodeStatusName(n.statusA)}`}>{nodeStatusName(n.statusA)}</span>
                      {n.statusA !== n.statusB ? (
                        <>
                          {" → "}
                          <span class={`st-text-${nodeStatusName(n.statusB)}`}>{nodeStatusName(n.statusB)}</span>
                        </>
                      ) : null}
                    </td>
                    <td class="mono">{n.agentA === n.agentB ? n.agentA : `${n.agentA || "–"} → ${n.agentB || "–"}`}</td>
                    <td>
                      <Delta a={Number(n.latencyMsA)} b={Number(n.latencyMsB)} fmt={(v) => duration(v)} />
                    </td>
                    <td>
                      <Delta a={tokensOf(n.usageA)} b={tokensOf(n.usageB)} fmt={(v) => v.toLocaleString("en-US")} />
                    </td>
                    <td>
                      <Delta a={n.usageA?.costUsd ?? 0} b={n.usageB?.costUsd ?? 0} fmt={cost} />
                    </td>
                  </tr>
                  {n.outputs
                    .filter((o) => o.changed)
                    .map((o) => (
                      <tr class={`output-diff ${mark}`} data-output-of={n.nodeId}>
                        <td colSpan={7}>
                          <div class="muted">
                            output <strong>{o.name}</strong>
                            {!o.artifactIdA ? " (only in B)" : !o.artifactIdB ? " (only in A)" : ""}
                          </div>
                          {o.textDiff ? <TextDiff text={o.textDiff} /> : <p class="muted">Contents differ (not text, or too large to compare line by line).</p>}
                        </td>
                      </tr>
                    ))}
                </>
              );
            })}
          </tbody>
        </table>
      </div>
    </div>
  );
}
