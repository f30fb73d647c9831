// A Gantt chart of the run: one row per node on a shared time axis, one
// segment per attempt, so parallel branches overlap on screen and retries
// show as separate bars. Nodes that did not run here (reused, overridden,
// skipped) say so instead of drawing a bar.
import { ms, NodeStatus, type NodeExecution, type Run } from "../api";
import { duration } from "../format";
import { nodeLook } from "./Status";

interface Segment {
  start: number;
  end: number;
  failed: boolean;
  number: number;
}

/** Looks of nodes that did not run in this run. A reused node's record
 * keeps the times of the run that produced it: drawn, they would stretch
 * the axis back to that run. */
const NOT_RUN_HERE = new Set(["reused", "overridden"]);

/** What a row without a bar says. */
const NOTES: Record<string, string> = {
  reused: "reused from source, did not run",
  overridden: "output overridden by the replay, did not run",
};

function segments(n: NodeExecution, look: string, now: number): Segment[] {
  if (NOT_RUN_HERE.has(look)) return [];
  if (n.attempts.length) {
    return n.attempts.map((a, i) => {
      const start = ms(a.startTime) ?? now;
      const last = i === n.attempts.length - 1;
      const end = ms(a.finishTime) ?? (last ? (ms(n.finishTime) ?? now) : start);
      return { start, end, failed: !!a.error, number: a.number };
    });
  }
  const start = ms(n.startTime);
  if (start === null) return [];
  return [{ start, end: ms(n.finishTime) ?? now, failed: n.status === NodeStatus.FAILED, number: 1 }];
}

export function Timeline({
  run,
  nodes,
  selected,
  onSelect,
}: {
  run: Run;
  nodes: NodeExecution[];
  selected: string | null;
  onSelect: (id: string) => void;
}) {
  const now = Date.now();
  const rows = nodes.map((n) => {
    const look = nodeLook(n, run);
    return { n, look, segs: segments(n, look, now) };
  });
  const starts = rows.flatMap((r) => r.segs.map((s) => s.start));
  const ends = rows.flatMap((r) => r.segs.map((s) => s.end));
  const t0 = Math.min(ms(run.startTime) ?? Infinity, ...starts);
  const t1 = Math.max(ms(run.finishTime) ?? -Infinity, ...ends, t0 + 1);
  const span = t1 - t0;
  const pct = (t: number) => `${(((t - t0) / span) * 100).toFixed(3)}%`;
  if (!Number.isFinite(t0)) return <p class="muted">Nothing has run yet.</p>;
  return (
    <div class="timeline" data-testid="timeline" role="list" aria-label="timeline">
      <div class="tl-axis" aria-hidden="true">
        <span>0</span>
        <span>{duration(span / 2)}</span>
        <span>{duration(span)}</span>
      </div>
      {rows.map(({ n, look, segs }) => (
        <div
          class={`tl-row${selected === n.nodeId ? " selected" : ""}`}
          role="listitem"
          data-node={n.nodeId}
          onClick={() => onSelect(n.nodeId)}
        >
          <span class="tl-label">{n.nodeId}</span>
          <span class="tl-track">
            {segs.length === 0 ? (
              <span class={`tl-note st-text-${look}`}>{NOTES[look] ?? look}</span>
            ) : (
              segs.map((s) => (
                <span
                  class={`tl-bar st-${s.failed ? "failed" : look}`}
                  data-start={s.start}
                  data-end={s.end}
                  data-attempt={s.number}
                  style={{ left: pct(s.start), width: `max(2px, calc(${pct(s.end)} - ${pct(s.start)}))` }}
                  title={`${n.nodeId} attempt ${s.number}: ${duration(s.end - s.start)}${s.failed ? " (failed)" : ""}`}
                />
              ))
            )}
          </span>
        </div>
      ))}
    </div>
  );
}
