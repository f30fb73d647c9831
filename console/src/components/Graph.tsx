// The run's DAG as an SVG: nodes coloured by status, reused nodes linked
// to the run that produced them, every node focusable and selectable with
// the keyboard.
import { useMemo } from "preact/hooks";
import type { NodeExecution, Run } from "../api";
import { layout, NODE_H, NODE_W } from "../layout";
import { runUrl } from "../router";
import { nodeLook } from "./Status";

interface Props {
  run: Run;
  nodes: NodeExecution[];
  selected: string | null;
  onSelect: (nodeId: string) => void;
  /** Nodes drawn faded (the errors-only view). */
  faded?: Set<string>;
}

function clip(text: string, chars: number): string {
  return text.length > chars ? `${text.slice(0, chars - 1)}…` : text;
}

export function Graph({ run, nodes, selected, onSelect, faded }: Props) {
  const shape = useMemo(
    () => layout(nodes.map((n) => ({ id: n.nodeId, deps: n.dependsOn }))),
    // The shape depends on ids and edges only, not on statuses.
    [nodes.map((n) => `${n.nodeId}<${n.dependsOn.join(",")}`).join(";")],
  );
  return (
    <div class="graph-wrap" data-testid="graph">
      <svg
        class="graph"
        width={shape.width}
        height={shape.height}
        viewBox={`0 0 ${shape.width} ${shape.height}`}
        role="group"
        aria-label={`workflow graph, ${nodes.length} nodes`}
      >
        <defs>
          <marker id="arrow" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="8" markerHeight="8" orient="auto">
            <path d="M0,0 L8,4 L0,8 z" class="arrowhead" />
          </marker>
        </defs>
        {shape.edges.map((e) => (
          <path
            class={`edge${faded?.has(e.to) ? " faded" : ""}`}
            d={e.path}
            marker-end="url(#arrow)"
            data-from={e.from}
            data-to={e.to}
          />
        ))}
        {nodes.map((n) => {
          const p = shape.nodes.get(n.nodeId)!;
          const look = nodeLook(n, run);
          const cls = `node st-${look}${selected === n.nodeId ? " selected" : ""}${faded?.has(n.nodeId) ? " faded" : ""}`;
          return (
            <g
              class={cls}
              transform={`translate(${p.x},${p.y})`}
              data-node={n.nodeId}
              data-status={look}
              tabindex={0}
              role="button"
              aria-pressed={selected === n.nodeId}
              aria-label={`${n.nodeId}: ${look}`}
              onClick={() => onSelect(n.nodeId)}
              onKeyDown={(e) => {
                if (e.key === "Enter" || e.key === " ") {
                  e.preventDefault();
                  onSelect(n.nodeId);
                }
              }}
            >
              <title>{`${n.nodeId} — ${look}${n.agent ? ` — ${n.agent}` : ""}`}</title>
              <rect width={NODE_W} height={NODE_H} rx="6" />
              <text x="10" y="17" class="node-id">
                {clip(n.nodeId, 18)}
              </text>
              <text x="10" y="32" class="node-sub">
                {clip(look, 12)}
              </text>
              {n.reusedFromRunId ? (
                <a href={runUrl(n.reusedFromRunId, n.nodeId)} class="reused-link" aria-label={`reused from run ${n.reusedFromRunId}`}>
                  <text x={NODE_W - 10} y="32" text-anchor="end">
                    ↗ source
                  </text>
                </a>
              ) : null}
            </g>
          );
        })}
      </svg>
    </div>
  );
}
