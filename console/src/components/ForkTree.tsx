// Where a run sits among its replays: the runs it was forked from, up to
// the original, and every replay of it (and of those), as a tree.
import { runs, type Run } from "../api";
import { shortId } from "../format";
import { ErrorBox, useLoad } from "../hooks";
import { runUrl } from "../router";
import { RunBadge } from "./Status";

/** How far the tree follows replays of replays. */
const DEPTH = 3;
/** Ancestors followed at most: a chain longer than this is cut. */
const ANCESTORS = 20;

interface Tree {
  run: Run;
  children: Tree[];
}

async function replaysOf(id: string, depth: number): Promise<Tree[]> {
  if (depth === 0) return [];
  const { runs: found } = await runs.listRuns({ forkedFrom: id, pageSize: 50 });
  return Promise.all(found.map(async (run) => ({ run, children: await replaysOf(run.id, depth - 1) })));
}

async function load(run: Run): Promise<{ ancestors: Run[]; replays: Tree[] }> {
  const ancestors: Run[] = [];
  let from = run.replay?.forkedFrom;
  while (from && ancestors.length < ANCESTORS) {
    const { run: parent } = await runs.getRun({ runId: from });
    ancestors.unshift(parent!);
    from = parent!.replay?.forkedFrom;
  }
  return { ancestors, replays: await replaysOf(run.id, DEPTH) };
}

function Line({ run, current }: { run: Run; current?: boolean }) {
  return (
    <>
      <RunBadge status={run.status} />{" "}
      {current ? (
        <strong class="mono" aria-current="page">
          {shortId(run.id)} (this run)
        </strong>
      ) : (
        <a class="mono" href={runUrl(run.id)} title={run.id}>
          {shortId(run.id)}
        </a>
      )}
      {run.replay?.forkedAtStep ? <span class="muted"> from {run.replay.forkedAtStep}</span> : null}
    </>
  );
}

function Branches({ trees }: { trees: Tree[] }) {
  if (!trees.length) return null;
  return (
    <ul>
      {trees.map((t) => (
        <li>
          <Line run={t.run} />
          <Branches trees={t.children} />
        </li>
      ))}
    </ul>
  );
}

export function ForkTree({ run }: { run: Run }) {
  const tree = useLoad(() => load(run), [run.id]);
  if (tree.error) return <ErrorBox error={tree.error} />;
  if (!tree.data) return <p class="muted">Loading…</p>;
  const { ancestors, replays } = tree.data;
  if (!ancestors.length && !replays.length) return <p class="muted">No replays of this run yet.</p>;
  // Ancestors nest one inside the other, this run inside the last.
  let inner = (
    <li>
      <Line run={run} current />
      <Branches trees={replays} />
    </li>
  );
  for (const a of [...ancestors].reverse()) {
    inner = (
      <li>
        <Line run={a} />
        <ul>{inner}</ul>
      </li>
    );
  }
  return (
    <ul class="fork-tree" data-testid="fork-tree">
      {inner}
    </ul>
  );
}
