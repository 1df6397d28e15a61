// The one rewrite engine every rule-table pass runs on: bottom-up, each node rebuilt over its
// rewritten inputs, then the first matching rule replaces it, and the replacement is rewritten in
// turn until no rule fires. Plus common-subexpression elimination.
import { invariant } from "../diagnostics.ts";
import { withInputs } from "../ir/build.ts";
import { graph, topoSort, type Graph, type Node } from "../ir/node.ts";

/** A rewrite rule: a replacement for the node, or undefined when it does not apply. */
export interface Rule {
  name: string;
  apply: (n: Node) => Node | undefined;
}

export interface Rewritten {
  graph: Graph;
  /** Old node to new node, for callers that hold on to nodes of the old graph. */
  map: Map<Node, Node>;
  /** How many times each rule fired. */
  fired: Map<string, number>;
}

const MAX_DEPTH = 64;

export function rewriteGraph(g: Graph, rules: readonly Rule[]): Rewritten {
  const map = new Map<Node, Node>(); // old and already-rewritten nodes to their final form
  const fired = new Map<string, number>();
  const visit = (root: Node, depth: number): Node => {
    invariant(depth < MAX_DEPTH, `rewrite rules loop on %${root.id} (${root.op})`);
    for (const n of topoSort([root], (x) => map.has(x))) {
      const inputs = n.inputs.map((i) => map.get(i)!);
      let cur = inputs.every((x, i) => x === n.inputs[i]) ? n : withInputs(n, inputs);
      for (const rule of rules) {
        const next = rule.apply(cur);
        if (next === undefined || next === cur) continue;
        fired.set(rule.name, (fired.get(rule.name) ?? 0) + 1);
        cur = visit(next, depth + 1); // the replacement may itself match a rule
        break;
      }
      map.set(n, cur);
      map.set(cur, cur);
    }
    return map.get(root)!;
  };
  for (const n of g.outputs.values()) visit(n, 0);
  return { graph: graph([...g.outputs].map(([name, n]) => [name, map.get(n)!])), map, fired };
}

/** Merges structurally equal nodes (same op, attributes and inputs). */
export function eliminateCommonSubexpressions(g: Graph): Rewritten {
  const seen = new Map<string, Node>();
  const map = new Map<Node, Node>();
  let merged = 0;
  for (const n of topoSort(g.outputs.values())) {
    const inputs = n.inputs.map((i) => map.get(i)!);
    const key = `${n.op}|${inputs.map((i) => i.id).join(",")}|${JSON.stringify(n.attrs)}`;
    const known = seen.get(key);
    if (known) {
      merged++;
      map.set(n, known);
      continue;
    }
    const cur = inputs.every((x, i) => x === n.inputs[i]) ? n : withInputs(n, inputs);
    seen.set(key, cur);
    map.set(n, cur);
  }
  return { graph: graph([...g.outputs].map(([name, n]) => [name, map.get(n)!])), map, fired: new Map([["cse", merged]]) };
}
