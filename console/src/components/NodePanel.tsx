// Everything about one node: agent, model, prompt, inputs, outputs with
// their media type, error, every attempt, usage, the worker that ran it —
// and a replay from it.
import { useState } from "preact/hooks";
import { errorText, FailureOrigin, ms, readArtifact, type NodeExecution, type Run } from "../api";
import { cost, duration, time, tokens } from "../format";
import { useLoad } from "../hooks";
import { runUrl } from "../router";
import { NodeBadge, nodeLook } from "./Status";

/** Contents longer than this show their start and a "show all". */
const PREVIEW_CHARS = 20_000;

function pretty(text: string, mediaType: string): string {
  if (mediaType.includes("json")) {
    try {
      return JSON.stringify(JSON.parse(text), null, 2);
    } catch {
      return text;
    }
  }
  return text;
}

function Long({ text }: { text: string }) {
  const [all, setAll] = useState(false);
  if (all || text.length <= PREVIEW_CHARS) return <pre class="content">{text}</pre>;
  return (
    <>
      <pre class="content">{text.slice(0, PREVIEW_CHARS)}</pre>
      <button type="button" onClick={() => setAll(true)}>
        Show all ({text.length.toLocaleString("en-US")} characters)
      </button>
    </>
  );
}

function Output({ id, runId }: { id: string; runId: string }) {
  const a = useLoad(() => readArtifact(id), [id]);
  if (a.error) return <div class="error-box">{errorText(a.error)}</div>;
  if (!a.data) return <p class="muted">Loading {id}…</p>;
  const meta = a.data.artifact;
  const text = new TextDecoder().decode(a.data.content);
  return (
    <div class="output" data-output={meta.name}>
      <h4>
        {meta.name} <span class="muted">{meta.mediaType}</span>
        {meta.runId && meta.runId !== runId ? (
          <span class="muted">
            {" "}
            · made by <a href={runUrl(meta.runId)}>{meta.runId}</a>
          </span>
        ) : null}
      </h4>
      <Long text={pretty(text, meta.mediaType)} />
    </div>
  );
}

export function NodePanel({
  run,
  node,
  liveText,
  onReplay,
  onClose,
}: {
  run: Run;
  node: NodeExecution;
  liveText: string;
  onReplay: (nodeId: string) => void;
  onClose: () => void;
}) {
  const look = nodeLook(node, run);
  const worker = [...node.attempts].reverse().find((a) => a.worker)?.worker;
  const usage = node.usage;
  return (
    <aside class="panel card" data-testid="node-panel" aria-label={`node ${node.nodeId}`}>
      <header class="panel-head">
        <h2>
          {node.nodeId} <NodeBadge look={look} />
        </h2>
        <button type="button" class="close" onClick={onClose} aria-label="close the node panel">
          ×
        </button>
      </header>
      <dl class="facts">
        <dt>Agent</dt>
        <dd class="mono">{node.agent || "–"}</dd>
        {node.model ? (
          <>
            <dt>Model</dt>
            <dd class="mono">{node.model}</dd>
          </>
        ) : null}
        {node.reusedFromRunId ? (
          <>
            <dt>Reused from</dt>
            <dd>
              <a class="mono" href={runUrl(node.reusedFromRunId, node.nodeId)}>
                {node.reusedFromRunId}
              </a>{" "}
              <span class="muted">(not run again; the same artifacts)</span>
            </dd>
          </>
        ) : null}
        {look === "overridden" ? (
          <>
            <dt>Output</dt>
            <dd>set by the replay's override; the node did not run</dd>
          </>
        ) : null}
        <dt>Started</dt>
        <dd>{time(ms(node.startTime))}</dd>
        <dt>Latency</dt>
        <dd>
          {node.reusedFromRunId
            ? "– (reused)"
            : ms(node.finishTime) === null
              ? "– (not finished)"
              : duration(Number(node.latencyMs))}
        </dd>
        <dt>Tokens</dt>
        <dd>
          {usage ? `${tokens(usage.inputTokens)} in · ${tokens(usage.outputTokens)} out` : "–"}
        </dd>
        <dt>Cost</dt>
        <dd>{usage ? cost(usage.costUsd) : "–"}</dd>
        {worker ? (
          <>
            <dt>Worker</dt>
            <dd class="mono">{worker}</dd>
          </>
        ) : null}
      </dl>
      <p>
        <button type="button" onClick={() => onReplay(node.nodeId)}>
          Replay from {node.nodeId}…
        </button>
      </p>
      {node.error ? (
        <section>
          <h3>Error</h3>
          <pre class="content error-text">
            {node.error}
            {node.errorOrigin ? ` (${FailureOrigin[node.errorOrigin].toLowerCase()})` : ""}
          </pre>
        </section>
      ) : null}
      {liveText ? (
        <section>
          <h3>Streaming</h3>
          <pre class="content live" data-testid="live-text" aria-live="polite">
            {liveText}
          </pre>
        </section>
      ) : null}
      {node.outputArtifactIds.length ? (
        <section>
          <h3>Outputs</h3>
          {node.outputArtifactIds.map((id) => (
            <Output key={id} id={id} runId={run.id} />
          ))}
        </section>
      ) : null}
      {node.prompt ? (
        <section>
          <h3>Prompt</h3>
          <Long text={node.prompt} />
        </section>
      ) : null}
      {node.inputsJson ? (
        <section>
          <h3>Inputs</h3>
          <Long text={pretty(node.inputsJson, "json")} />
        </section>
      ) : null}
      {node.configJson && node.configJson !== "{}" ? (
        <section>
          <h3>Config</h3>
          <Long text={pretty(node.configJson, "json")} />
        </section>
      ) : null}
      {node.attempts.length ? (
        <section>
          <h3>Attempts</h3>
          <table class="attempts">
            <thead>
              <tr>
                <th>#</th>
                <th>Started</th>
                <th>Took</th>
                <th>Worker</th>
                <th>Error</th>
              </tr>
            </thead>
            <tbody>
              {node.attempts.map((a) => {
                const s = ms(a.startTime);
                const f = ms(a.finishTime);
                return (
                  <tr>
                    <td>{a.number}</td>
                    <td>{time(s)}</td>
                    <td>{s !== null && f !== null ? duration(f - s) : "running"}</td>
                    <td class="mono">{a.worker || "–"}</td>
                    <td class="error-text">
                      {a.error}
                      {a.errorOrigin ? ` (${FailureOrigin[a.errorOrigin].toLowerCase()})` : ""}
                    </td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </section>
      ) : null}
    </aside>
  );
}
