// Status badges: the same colours everywhere a status shows.
import { NodeStatus, RunStatus, type NodeExecution, type Run } from "../api";
import { nodeStatusName, runStatusName } from "../format";

export function RunBadge({ status }: { status: RunStatus }) {
  const name = runStatusName(status);
  return <span class={`badge st-${name}`}>{name}</span>;
}

/** What a node shows as: its status, or "overridden" for an output a
 * replay set by hand (the node did not run). */
export function nodeLook(n: NodeExecution, run?: Run): string {
  if (n.status === NodeStatus.COMPLETED) {
    const overridden =
      n.model === "override" || (run?.replay?.overrides ?? []).some((o) => o.selector === n.nodeId && !n.attempts.length);
    if (overridden) return "overridden";
  }
  return nodeStatusName(n.status);
}

export function NodeBadge({ look }: { look: string }) {
  return <span class={`badge st-${look}`}>{look}</span>;
}
