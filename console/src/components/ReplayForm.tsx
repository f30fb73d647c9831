// Replaying a finished run from the page: the same request the CLI's
// `retake replay` sends, so the server applies the same rules; its answer
// (or its refusal, in its own words) shows here.
import { useState } from "preact/hooks";
import { errorText, noteError, runs, type NodeExecution, type Run } from "../api";
import { navigate, runUrl } from "../router";

interface Pair {
  node: string;
  value: string;
  output: string;
}

function Rows({
  label,
  rows,
  nodes,
  valueLabel,
  withOutput,
  onChange,
}: {
  label: string;
  rows: Pair[];
  nodes: string[];
  valueLabel: string;
  withOutput?: boolean;
  onChange: (rows: Pair[]) => void;
}) {
  const set = (i: number, change: Partial<Pair>) => onChange(rows.map((r, j) => (j === i ? { ...r, ...change } : r)));
  return (
    <fieldset>
      <legend>{label}</legend>
      {rows.map((r, i) => (
        <div class="pair">
          <label>
            Node{" "}
            <select value={r.node} onChange={(e) => set(i, { node: (e.target as HTMLSelectElement).value })}>
              {nodes.map((n) => (
                <option value={n}>{n}</option>
              ))}
            </select>
          </label>
          {withOutput ? (
            <label>
              Output{" "}
              <input
                value={r.output}
                placeholder="its only one"
                size={10}
                onInput={(e) => set(i, { output: (e.target as HTMLInputElement).value })}
              />
            </label>
          ) : null}
          <label>
            {valueLabel}{" "}
            <input value={r.value} onInput={(e) => set(i, { value: (e.target as HTMLInputElement).value })} />
          </label>
          <button type="button" aria-label={`remove ${label} row`} onClick={() => onChange(rows.filter((_, j) => j !== i))}>
            −
          </button>
        </div>
      ))}
      <button type="button" onClick={() => onChange([...rows, { node: nodes[0] ?? "", value: "", output: "" }])}>
        + {label.toLowerCase().replace(/s$/, "")}
      </button>
    </fieldset>
  );
}

export function ReplayForm({
  run,
  nodes,
  from,
  onClose,
}: {
  run: Run;
  nodes: NodeExecution[];
  from: string;
  onClose: () => void;
}) {
  const ids = nodes.map((n) => n.nodeId);
  const [fromNode, setFromNode] = useState(from);
  const [swaps, setSwaps] = useState<Pair[]>([]);
  const [overrides, setOverrides] = useState<Pair[]>([]);
  const [vars, setVars] = useState<{ name: string; value: string }[]>([]);
  const [allowDrift, setAllowDrift] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const { run: replay } = await runs.replayRun({
        runId: run.id,
        from: fromNode,
        swaps: swaps.map((s) => ({ nodeId: s.node, agent: s.value.trim() })),
        overrides: overrides.map((o) => ({ selector: o.node, output: o.output.trim(), value: o.value })),
        variables: Object.fromEntries(vars.filter((v) => v.name.trim()).map((v) => [v.name.trim(), v.value])),
        allowDrift,
      });
      navigate(runUrl(replay!.id));
    } catch (err) {
      noteError(err);
      setError(errorText(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <form class="replay-form card" data-testid="replay-form" onSubmit={submit} aria-label="replay">
      <header class="panel-head">
        <h2>Replay {run.workflowName}</h2>
        <button type="button" class="close" onClick={onClose} aria-label="close the replay form">
          ×
        </button>
      </header>
      <p class="muted">
        Upstream results are reused; the chosen node, the nodes a change touches and everything downstream run again.
      </p>
      <label>
        From node{" "}
        <select name="from" value={fromNode} onChange={(e) => setFromNode((e.target as HTMLSelectElement).value)}>
          <option value="">(only what the changes below touch)</option>
          {ids.map((n) => (
            <option value={n}>{n}</option>
          ))}
        </select>
      </label>
      <Rows label="Agent swaps" rows={swaps} nodes={ids} valueLabel="Agent" onChange={setSwaps} />
      <Rows label="Overrides" rows={overrides} nodes={ids} valueLabel="Value" withOutput onChange={setOverrides} />
      <fieldset>
        <legend>Variables</legend>
        {vars.map((v, i) => (
          <div class="pair">
            <label>
              Name{" "}
              <input
                value={v.name}
                list="run-variables"
                onInput={(e) => setVars(vars.map((x, j) => (j === i ? { ...x, name: (e.target as HTMLInputElement).value } : x)))}
              />
            </label>
            <label>
              Value{" "}
              <input
                value={v.value}
                onInput={(e) => setVars(vars.map((x, j) => (j === i ? { ...x, value: (e.target as HTMLInputElement).value } : x)))}
              />
            </label>
            <button type="button" aria-label="remove variable row" onClick={() => setVars(vars.filter((_, j) => j !== i))}>
              −
            </button>
          </div>
        ))}
        <datalist id="run-variables">
          {Object.keys(run.variables).map((k) => (
            <option value={k} />
          ))}
        </datalist>
        <button type="button" onClick={() => setVars([...vars, { name: "", value: "" }])}>
          + variable
        </button>
      </fieldset>
      <label class="check">
        <input type="checkbox" checked={allowDrift} onChange={(e) => setAllowDrift((e.target as HTMLInputElement).checked)} />{" "}
        Allow drift (reuse nodes whose definition changed)
      </label>
      {error ? (
        <div class="error-box" role="alert" data-testid="replay-error">
          {error}
        </div>
      ) : null}
      <p>
        <button type="submit" class="primary" disabled={busy}>
          {busy ? "Starting…" : "Start replay"}
        </button>
      </p>
    </form>
  );
}
