//! The dependency graph: unknown and self dependencies, cycles,
//! topological order, output references that must point upstream, and
//! each node's dependents.

use super::parse::Validator;
use super::{Node, Workflow};
use crate::engine::template::{self, Ref};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};

impl Workflow {
    /// Direct dependents of each node, by position.
    pub fn dependents(&self) -> Vec<Vec<usize>> {
        let mut out = vec![Vec::new(); self.nodes.len()];
        for (i, node) in self.nodes.iter().enumerate() {
            for dep in &node.depends_on {
                out[self.index[dep]].push(i);
            }
        }
        out
    }
}

/// Checks dependencies, references and cycles. Returns the topological
/// order (positions into `nodes`) when the graph is sound.
pub(super) fn check_graph(nodes: &[Node], v: &mut Validator) -> Option<Vec<usize>> {
    let index: HashMap<&str, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.as_str(), i))
        .collect();
    let mut sound = true;
    for node in nodes {
        for dep in &node.depends_on {
            if dep == &node.id {
                v.error(
                    Some(&node.id),
                    "depends on itself (cycle: {0} -> {0})".replace("{0}", &node.id),
                );
                sound = false;
            } else if !index.contains_key(dep.as_str()) {
                v.error(
                    Some(&node.id),
                    format!("depends_on names unknown node '{dep}'"),
                );
                sound = false;
            }
        }
    }
    // Check the rest of the graph without the broken edges, so their
    // errors do not hide the others.
    let cleaned: Vec<Node>;
    let nodes: &[Node] = if sound {
        nodes
    } else {
        cleaned = nodes
            .iter()
            .map(|n| {
                let mut n = n.clone();
                n.depends_on
                    .retain(|d| d != &n.id && index.contains_key(d.as_str()));
                n
            })
            .collect();
        &cleaned
    };

    // Kahn's algorithm; ties keep declaration order so runs are predictable.
    let mut indegree: Vec<usize> = nodes.iter().map(|n| n.depends_on.len()).collect();
    let mut dependents = vec![Vec::new(); nodes.len()];
    for (i, n) in nodes.iter().enumerate() {
        for dep in &n.depends_on {
            dependents[index[dep.as_str()]].push(i);
        }
    }
    let entries: Vec<usize> = (0..nodes.len()).filter(|&i| indegree[i] == 0).collect();
    if entries.is_empty() {
        v.error(None, "no entry node: every node depends on another".into());
    }
    let mut ready: std::collections::BTreeSet<usize> = entries.into_iter().collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(i) = ready.pop_first() {
        order.push(i);
        for &d in &dependents[i] {
            indegree[d] -= 1;
            if indegree[d] == 0 {
                ready.insert(d);
            }
        }
    }
    if order.len() < nodes.len() {
        for cycle in find_cycles(nodes, &index, &indegree) {
            let first = cycle[0].clone();
            v.error(
                Some(&first),
                format!("dependency cycle: {}", cycle.join(" -> ")),
            );
        }
        return None;
    }

    // Output references: the node must exist, declare the output, and be upstream.
    let refs: Vec<Vec<Ref>> = nodes
        .iter()
        .map(|node| {
            let mut refs = Vec::new();
            for value in [
                node.inputs.as_ref(),
                node.system_prompt.clone().map(Value::String).as_ref(),
                node.when
                    .as_ref()
                    .map(|w| Value::String(w.raw.clone()))
                    .as_ref(),
            ]
            .into_iter()
            .flatten()
            {
                let _ = template::refs_in_value(value, &mut refs);
            }
            refs
        })
        .collect();
    let index_ref = &index;
    let asked: Vec<(usize, usize)> = refs
        .iter()
        .enumerate()
        .flat_map(|(n, refs)| {
            refs.iter().filter_map(move |r| match r {
                Ref::Output { node: target, .. } => index_ref.get(target.as_str()).map(|&t| (n, t)),
                _ => None,
            })
        })
        .collect();
    let upstream = upstream_pairs(nodes, &index, &order, &asked);
    for (n, node) in nodes.iter().enumerate() {
        let mut reported = BTreeSet::new();
        for r in &refs[n] {
            let Ref::Output {
                node: target,
                output,
            } = r
            else {
                continue;
            };
            if !reported.insert(r.clone()) {
                continue;
            }
            let Some(&t) = index.get(target.as_str()) else {
                v.error(
                    Some(&node.id),
                    format!("references unknown node '{target}' in {r}"),
                );
                continue;
            };
            if !nodes[t].outputs.contains(output) {
                v.error(
                    Some(&node.id),
                    format!("references unknown output '{output}' of node '{target}' in {r} (outputs: {})", nodes[t].outputs.join(", ")),
                );
                continue;
            }
            if !upstream.contains(&(n, t)) {
                v.error(
                    Some(&node.id),
                    format!(
                        "references {r} but does not depend on '{target}' (add it to depends_on)"
                    ),
                );
            }
        }
    }
    sound.then_some(order)
}

/// Which of the `(node, target)` pairs have `target` upstream of `node`
/// through depends_on. Each node's ancestors among the targets are bit sets
/// filled in topological order, a few thousand targets at a time, so a
/// large graph costs edges times targets / 64 rather than a walk of the
/// graph for every reference.
fn upstream_pairs(
    nodes: &[Node],
    index: &HashMap<&str, usize>,
    order: &[usize],
    asked: &[(usize, usize)],
) -> BTreeSet<(usize, usize)> {
    const TARGETS_PER_PASS: usize = 4096;
    let mut targets: Vec<usize> = asked.iter().map(|&(_, t)| t).collect();
    targets.sort_unstable();
    targets.dedup();
    let mut bit = vec![usize::MAX; nodes.len()];
    let mut found = BTreeSet::new();
    for chunk in targets.chunks(TARGETS_PER_PASS) {
        for (b, &t) in chunk.iter().enumerate() {
            bit[t] = b;
        }
        let words = chunk.len().div_ceil(64);
        let mut rows = vec![0u64; nodes.len() * words];
        for &i in order {
            for dep in &nodes[i].depends_on {
                let d = index[dep.as_str()];
                for w in 0..words {
                    let inherited = rows[d * words + w];
                    rows[i * words + w] |= inherited;
                }
                if bit[d] != usize::MAX {
                    rows[i * words + bit[d] / 64] |= 1 << (bit[d] % 64);
                }
            }
        }
        for &(n, t) in asked {
            if bit[t] != usize::MAX && rows[n * words + bit[t] / 64] >> (bit[t] % 64) & 1 == 1 {
                found.insert((n, t));
            }
        }
        for &t in chunk {
            bit[t] = usize::MAX;
        }
    }
    found
}

/// Names each cycle among the nodes Kahn's algorithm could not order.
fn find_cycles(
    nodes: &[Node],
    index: &HashMap<&str, usize>,
    indegree: &[usize],
) -> Vec<Vec<String>> {
    let stuck: Vec<bool> = indegree.iter().map(|&d| d > 0).collect();
    let mut state = vec![0u8; nodes.len()]; // 0 new, 1 on stack, 2 done
    let mut cycles = Vec::new();
    for start in 0..nodes.len() {
        if !stuck[start] || state[start] != 0 {
            continue;
        }
        // Iterative DFS: deep graphs must not exhaust the stack.
        let mut path: Vec<(usize, usize)> = vec![(start, 0)];
        state[start] = 1;
        while let Some(&mut (i, ref mut next)) = path.last_mut() {
            let deps = &nodes[i].depends_on;
            if *next < deps.len() {
                let j = index[deps[*next].as_str()];
                *next += 1;
                if !stuck[j] {
                    continue;
                }
                if state[j] == 1 {
                    let from = path.iter().position(|&(k, _)| k == j).unwrap_or(0);
                    // depends_on points upstream; print the cycle in execution order.
                    let mut cycle: Vec<String> = path[from..]
                        .iter()
                        .map(|&(k, _)| nodes[k].id.clone())
                        .collect();
                    cycle.reverse();
                    cycle.push(cycle[0].clone());
                    cycles.push(cycle);
                } else if state[j] == 0 {
                    state[j] = 1;
                    path.push((j, 0));
                }
            } else {
                state[i] = 2;
                path.pop();
            }
        }
    }
    cycles
}

#[cfg(test)]
mod tests {
    use crate::engine::workflow::load_str;

    #[test]
    fn names_cycles_and_undeclared_dependencies() {
        let l = load_str(
            "name: w\nnodes:\n  s: {agent: local://echo, outputs: [r]}\n  a: {agent: local://echo, outputs: [r], depends_on: [s, c]}\n  b: {agent: local://echo, outputs: [r], depends_on: [a]}\n  c: {agent: local://echo, outputs: [r], depends_on: [b]}\n",
        );
        assert!(
            l.errors
                .iter()
                .any(|e| e.message.contains("dependency cycle") && e.message.contains("->")),
            "{:?}",
            l.errors
        );
        let l = load_str(
            "name: w\nnodes:\n  a: {agent: local://echo, outputs: [r]}\n  b: {agent: local://echo, outputs: [r], inputs: {x: \"${a.r}\"}}\n  c: {agent: local://echo, outputs: [r], inputs: {x: \"${a.nope}\"}, depends_on: [a]}\n",
        );
        let all: Vec<String> = l.errors.iter().map(|e| e.to_string()).collect();
        assert!(
            all.iter()
                .any(|e| e.contains("node 'b': references ${a.r} but does not depend on 'a'")),
            "{all:?}"
        );
        assert!(
            all.iter().any(|e| e.contains("unknown output 'nope'")),
            "{all:?}"
        );
    }

    #[test]
    fn no_entry_node_is_reported() {
        let l = load_str(
            "name: w\nnodes:\n  a: {agent: local://echo, outputs: [r], depends_on: [b]}\n  b: {agent: local://echo, outputs: [r], depends_on: [a]}\n",
        );
        assert!(l.errors.iter().any(|e| e.message.contains("no entry node")));
        assert!(
            l.errors
                .iter()
                .any(|e| e.message.contains("dependency cycle"))
        );
    }
}
