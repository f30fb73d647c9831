// Path routing with the History API: links are real <a href>, and a click
// on one is turned into a pushState so the app does not reload.
import { useEffect, useState } from "preact/hooks";

export type Route =
  | { page: "runs" }
  | { page: "run"; runId: string }
  | { page: "diff"; runA: string; runB: string }
  | { page: "experiments" }
  | { page: "experiment"; id: string }
  | { page: "missing" };

export function parse(path: string): Route {
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts.length === 0 || (parts.length === 1 && parts[0] === "runs")) return { page: "runs" };
  if (parts[0] === "runs" && parts.length === 2) return { page: "run", runId: parts[1] };
  if (parts[0] === "experiments" && parts.length === 1) return { page: "experiments" };
  if (parts[0] === "experiments" && parts.length === 2) return { page: "experiment", id: parts[1] };
  if (parts[0] === "runs" && parts.length === 4 && parts[2] === "diff") {
    return { page: "diff", runA: parts[1], runB: parts[3] };
  }
  return { page: "missing" };
}

const listeners = new Set<() => void>();

export function navigate(url: string, replace = false): void {
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  for (const l of listeners) l();
}

/** The current location, re-rendering on every navigation. */
export function useLocation(): { path: string; query: URLSearchParams } {
  const [, setTick] = useState(0);
  useEffect(() => {
    const changed = () => setTick((t) => t + 1);
    listeners.add(changed);
    addEventListener("popstate", changed);
    return () => {
      listeners.delete(changed);
      removeEventListener("popstate", changed);
    };
  }, []);
  return { path: location.pathname, query: new URLSearchParams(location.search) };
}

/** Same-origin link clicks navigate in place; modified clicks open as usual. */
export function interceptLinks(root: HTMLElement): void {
  root.addEventListener("click", (ev) => {
    if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
    const a = (ev.target as Element).closest("a");
    if (!a || a.target || a.hasAttribute("download")) return;
    const url = new URL(a.href, location.href);
    if (url.origin !== location.origin) return;
    ev.preventDefault();
    navigate(url.pathname + url.search + url.hash);
  });
}

/** Run ids by the name a page was opened with (`latest`, a prefix) once
 * it resolved: the page then shows the id in the address without being
 * opened anew. */
const openedAs = new Map<string, string>();

export function resolvedRun(name: string, id: string): void {
  if (name !== id) openedAs.set(id, openedAs.get(name) ?? name);
}

/** A stable identity for the run page of `runId`: the name it was first
 * opened with. */
export function runPageKey(runId: string): string {
  return openedAs.get(runId) ?? runId;
}

export function runUrl(id: string, node?: string): string {
  return `/runs/${encodeURIComponent(id)}${node ? `?node=${encodeURIComponent(node)}` : ""}`;
}

export function experimentUrl(id: string): string {
  return `/experiments/${encodeURIComponent(id)}`;
}

export function diffUrl(a: string, b: string): string {
  return `/runs/${encodeURIComponent(a)}/diff/${encodeURIComponent(b)}`;
}

/** The query string with `changes` applied (null removes a key). */
export function withQuery(changes: Record<string, string | null>): string {
  const q = new URLSearchParams(location.search);
  for (const [k, v] of Object.entries(changes)) {
    if (v === null || v === "") q.delete(k);
    else q.set(k, v);
  }
  const s = q.toString();
  return location.pathname + (s ? `?${s}` : "");
}
