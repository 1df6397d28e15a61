// The graph verifier, run after every pass in tests: each node's dtype and shape agree with its
// op's inference rule, every input is a node of the graph, ids are unique and there is no cycle.
import { diag, type Diagnostic } from "../diagnostics.ts";
import { inferType } from "./infer.ts";
import { OPS, postOrder, sameShape, type Graph, type Node } from "./node.ts";

const knownOps = new Set<string>(OPS);

/** Every problem found, as SFT4003 diagnostics naming the node; empty when the graph is valid. */
export function verifyGraph(g: Graph): Diagnostic[] {
  const problems: string[] = [];
  const byId = new Map<number, Node>();
  const checkNode = (n: Node) => {
    const other = byId.get(n.id);
    if (other && other !== n) problems.push(`two nodes share id %${n.id}`);
    byId.set(n.id, n);
    if (!knownOps.has(n.op)) return problems.push(`%${n.id}: unknown op '${n.op}'`);
    if (n.inputs.some((x) => !x || typeof x.id !== "number")) return problems.push(`%${n.id} (${n.op}): an input is undefined`);
    const t = inferType(n.op, n.inputs, n.attrs);
    if (typeof t === "string") problems.push(`%${n.id} (${n.op}): ${t}`);
    else if (t.dtype !== n.dtype || !sameShape(t.shape, n.shape)) problems.push(`%${n.id} (${n.op}): recorded ${n.dtype}[${n.shape}] but inputs give ${t.dtype}[${t.shape}]`);
  };
  // a missing input is reported by checkNode, not walked into
  postOrder(g.outputs.values(), (n) => n.inputs.filter(Boolean), { enter: checkNode, onCycle: (n) => problems.push(`cycle through %${n.id}`) });
  return problems.map((p) => diag("SFT4003", `Graph verification failed: ${p}.`, { hint: "This is a compiler bug; please report it with the pipeline file." }));
}
