// How values read on screen: statuses, durations, times, money, tokens.
import { NodeStatus, RunStatus, type NodeCounts } from "./api";

export function runStatusName(s: RunStatus): string {
  return (RunStatus[s] ?? "unspecified").toLowerCase();
}

export function nodeStatusName(s: NodeStatus): string {
  return (NodeStatus[s] ?? "unspecified").toLowerCase();
}

export const RUN_FINISHED = new Set([RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED]);

export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || ms < 0) return "–";
  // Fractions only where they tell short spans apart (a timeline's axis).
  if (ms < 10 && !Number.isInteger(ms)) return `${ms.toFixed(1)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${Math.round(s % 60)}s`;
  return `${Math.floor(m / 60)}h ${m % 60}m`;
}

export function time(ms: number | null): string {
  if (ms === null) return "–";
  const d = new Date(ms);
  const today = new Date();
  const sameDay = d.toDateString() === today.toDateString();
  const t = d.toLocaleTimeString(undefined, { hour12: false });
  return sameDay ? t : `${d.toISOString().slice(0, 10)} ${t}`;
}

export function cost(usd: number): string {
  if (usd === 0) return "$0";
  return usd < 0.01 ? `$${usd.toFixed(6)}` : `$${usd.toFixed(4)}`;
}

export function tokens(n: bigint | number): string {
  return Number(n).toLocaleString("en-US");
}

export function signed(n: number, unit = ""): string {
  if (n === 0) return `±0${unit}`;
  return `${n > 0 ? "+" : "−"}${Math.abs(n).toLocaleString("en-US")}${unit}`;
}

/** A short form of an id for tight places; the full id is in its title. */
export function shortId(id: string): string {
  return id.length > 16 ? `${id.slice(0, 12)}…${id.slice(-4)}` : id;
}

/** Nodes that are done, whatever the outcome: all but those still to run. */
export function finishedNodes(c: NodeCounts | undefined): number {
  return c ? c.total - c.pending - c.running - c.waiting - c.queued : 0;
}
