//! Small graph helpers shared by config validation (`depends_on`) and project detection (local
//! module calls): finding cycles and a stable topological order.
//!
//! Everything is iterative (no recursion), so a long chain written by a user cannot overflow the
//! stack, and deterministic (ordered maps), so diagnostics and run order never depend on hashing.
//! Nothing here knows about projects or files, and nothing does I/O.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::Hash;

/// Every cycle that a depth-first walk of `graph` runs into, each rotated to start at its smallest
/// node and listed once. Edges to nodes that are not keys of `graph` are fine (they lead nowhere).
///
/// This is not every elementary cycle of the graph (that can be exponential); it is one cycle per
/// back edge, which is enough to name the problem to the user and to prove there is none.
pub fn find_cycles<K: Ord + Hash + Clone>(graph: &BTreeMap<K, Vec<K>>) -> Vec<Vec<K>> {
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Mark {
        Active,
        Done,
    }
    // Marks are only looked up, never iterated, so a hash map keeps this fast without making
    // the output order depend on hashing (the walk follows the ordered `graph`).
    let mut mark: HashMap<&K, Mark> = HashMap::with_capacity(graph.len());
    let mut found: BTreeSet<Vec<K>> = BTreeSet::new();
    let mut cycles = Vec::new();
    let no_edges: &[K] = &[];

    for start in graph.keys() {
        if mark.contains_key(start) {
            continue;
        }
        mark.insert(start, Mark::Active);
        // (node, index of the next edge to follow)
        let mut stack: Vec<(&K, usize)> = vec![(start, 0)];
        while let Some(top) = stack.last_mut() {
            let node = top.0;
            let edges = graph.get(node).map_or(no_edges, Vec::as_slice);
            if top.1 >= edges.len() {
                mark.insert(node, Mark::Done);
                stack.pop();
                continue;
            }
            let next = &edges[top.1];
            top.1 += 1;
            match mark.get(next) {
                None => {
                    mark.insert(next, Mark::Active);
                    stack.push((next, 0));
                }
                Some(Mark::Active) => {
                    let from = stack
                        .iter()
                        .position(|(n, _)| *n == next)
                        .expect("an active node is on the stack");
                    let mut cycle: Vec<K> =
                        stack[from..].iter().map(|(n, _)| (*n).clone()).collect();
                    let min = cycle
                        .iter()
                        .enumerate()
                        .min_by(|a, b| a.1.cmp(b.1))
                        .map_or(0, |(i, _)| i);
                    cycle.rotate_left(min);
                    if found.insert(cycle.clone()) {
                        cycles.push(cycle);
                    }
                }
                Some(Mark::Done) => {}
            }
        }
    }
    cycles
}

/// `a → b → c → a`: how a cycle is shown to users.
pub fn show_cycle<K: std::fmt::Display>(cycle: &[K]) -> String {
    let mut parts: Vec<String> = cycle.iter().map(|k| format!("`{k}`")).collect();
    if let Some(first) = parts.first().cloned() {
        parts.push(first);
    }
    parts.join(" → ")
}

/// Orders `nodes` so that every node comes after the nodes it depends on, breaking ties by the
/// node's own order (so the result is stable: same input, same order). Dependencies outside
/// `nodes` are ignored. Nodes caught in a cycle cannot be ordered; they are appended at the end in
/// their own order rather than dropped — the caller has already reported the cycle, and losing a
/// project from a run would be worse than running it in an arbitrary position.
pub fn stable_topo_order<K: Ord + Clone>(
    nodes: &BTreeSet<K>,
    deps: impl Fn(&K) -> Vec<K>,
) -> Vec<K> {
    let mut waiting_on: BTreeMap<&K, usize> = BTreeMap::new();
    let mut dependents: BTreeMap<K, Vec<&K>> = BTreeMap::new();
    for node in nodes {
        let mut ds: Vec<K> = deps(node)
            .into_iter()
            .filter(|d| nodes.contains(d))
            .collect();
        ds.sort();
        ds.dedup();
        waiting_on.insert(node, ds.len());
        for d in ds {
            dependents.entry(d).or_default().push(node);
        }
    }
    let mut ready: BTreeSet<&K> = waiting_on
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(k, _)| *k)
        .collect();
    let mut out = Vec::with_capacity(nodes.len());
    let mut placed: BTreeSet<&K> = BTreeSet::new();
    while let Some(node) = ready.pop_first() {
        out.push(node.clone());
        placed.insert(node);
        for dependent in dependents.get(node).map_or(&[][..], Vec::as_slice) {
            if let Some(n) = waiting_on.get_mut(dependent) {
                *n -= 1;
                if *n == 0 {
                    ready.insert(dependent);
                }
            }
        }
    }
    out.extend(nodes.iter().filter(|n| !placed.contains(n)).cloned());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(
        edges: &[(&'static str, &[&'static str])],
    ) -> BTreeMap<&'static str, Vec<&'static str>> {
        edges.iter().map(|(k, v)| (*k, v.to_vec())).collect()
    }

    #[test]
    fn cycles_are_found_once_and_rotated() {
        let g = graph(&[
            ("c", &["a"]),
            ("a", &["b"]),
            ("b", &["c"]),
            ("d", &["d"]),
            ("e", &["a"]),
        ]);
        let cycles = find_cycles(&g);
        assert_eq!(cycles, vec![vec!["a", "b", "c"], vec!["d"]]);
        assert_eq!(show_cycle(&cycles[0]), "`a` → `b` → `c` → `a`");
        assert!(find_cycles(&graph(&[("a", &["b", "c"]), ("b", &["c"]), ("c", &[])])).is_empty());
    }

    #[test]
    fn long_chains_do_not_recurse() {
        let names: Vec<String> = (0..100_000).map(|i| format!("n{i:06}")).collect();
        let mut g: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for w in names.windows(2) {
            g.insert(w[0].clone(), vec![w[1].clone()]);
        }
        assert!(find_cycles(&g).is_empty());
    }

    #[test]
    fn topo_order_is_stable_and_keeps_cycles() {
        let nodes: BTreeSet<&str> = ["app", "db", "net", "zeta", "x", "y"].into_iter().collect();
        let deps = |n: &&str| -> Vec<&str> {
            match *n {
                "app" => vec!["db", "net", "unknown"],
                "db" => vec!["net"],
                "x" => vec!["y"],
                "y" => vec!["x"],
                _ => vec![],
            }
        };
        assert_eq!(
            stable_topo_order(&nodes, deps),
            vec!["net", "db", "app", "zeta", "x", "y"]
        );
    }
}
