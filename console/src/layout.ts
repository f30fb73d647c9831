// A layered layout of a DAG, left to right: a node's layer is one past its
// deepest dependency, and within each layer nodes are ordered by the mean
// position of their neighbours (a few sweeps each way), which untangles
// most crossings in the graphs workflows make.

export interface LayoutNode {
  id: string;
  deps: string[];
}

export interface Placed {
  id: string;
  x: number;
  y: number;
  layer: number;
}

export interface Edge {
  from: string;
  to: string;
  path: string;
}

export interface Layout {
  nodes: Map<string, Placed>;
  edges: Edge[];
  width: number;
  height: number;
}

export const NODE_W = 150;
export const NODE_H = 40;
const GAP_X = 56;
const GAP_Y = 18;
const SWEEPS = 4;

export function layout(input: LayoutNode[]): Layout {
  const known = new Set(input.map((n) => n.id));
  const layerOf = new Map<string, number>();
  // Nodes come in topological order; a dependency not yet placed (or
  // unknown) counts as layer 0 so a damaged order still draws.
  for (const n of input) {
    let layer = 0;
    for (const d of n.deps) if (known.has(d)) layer = Math.max(layer, (layerOf.get(d) ?? 0) + 1);
    layerOf.set(n.id, layer);
  }
  const layers: string[][] = [];
  for (const n of input) (layers[layerOf.get(n.id)!] ??= []).push(n.id);

  const deps = new Map(input.map((n) => [n.id, n.deps.filter((d) => known.has(d))]));
  const dependents = new Map<string, string[]>();
  for (const n of input) for (const d of deps.get(n.id)!) (dependents.get(d) ?? dependents.set(d, []).get(d)!).push(n.id);

  const order = new Map<string, number>();
  const number = () => layers.forEach((l) => l.forEach((id, i) => order.set(id, i)));
  number();
  const mean = (ids: string[] | undefined, fallback: number) =>
    ids && ids.length ? ids.reduce((s, id) => s + order.get(id)!, 0) / ids.length : fallback;
  for (let sweep = 0; sweep < SWEEPS; sweep++) {
    const down = sweep % 2 === 0;
    const seq = down ? layers.slice(1) : layers.slice(0, -1).reverse();
    for (const layer of seq) {
      const key = new Map(layer.map((id) => [id, mean(down ? deps.get(id) : dependents.get(id), order.get(id)!)]));
      layer.sort((a, b) => key.get(a)! - key.get(b)! || order.get(a)! - order.get(b)!);
      layer.forEach((id, i) => order.set(id, i));
    }
  }

  const tallest = Math.max(1, ...layers.map((l) => l.length));
  const height = tallest * (NODE_H + GAP_Y) + GAP_Y;
  const nodes = new Map<string, Placed>();
  layers.forEach((ids, layer) => {
    // Each layer is centred, so a lone node sits level with its siblings' middle.
    const offset = (height - ids.length * (NODE_H + GAP_Y) - GAP_Y) / 2;
    ids.forEach((id, i) => {
      nodes.set(id, { id, layer, x: GAP_X / 2 + layer * (NODE_W + GAP_X), y: offset + GAP_Y + i * (NODE_H + GAP_Y) });
    });
  });
  const edges: Edge[] = [];
  for (const n of input) {
    const to = nodes.get(n.id)!;
    for (const d of deps.get(n.id)!) {
      const from = nodes.get(d)!;
      const x1 = from.x + NODE_W;
      const y1 = from.y + NODE_H / 2;
      const x2 = to.x - 4;
      const y2 = to.y + NODE_H / 2;
      const mid = (x1 + x2) / 2;
      edges.push({ from: d, to: n.id, path: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}` });
    }
  }
  return { nodes, edges, width: layers.length * (NODE_W + GAP_X), height };
}
