// Fusion and scheduling: the graph becomes an ordered list of kernel launches. Decisions, in order:
//  1. movement ops are strided views of a buffer (no kernel) unless a reader cannot take the view;
//  2. elementwise nodes are computed inside the kernels that read them (recomputed per kernel)
//     unless a library kernel, a view or a graph output needs them in a buffer;
//  3. elementwise chains after a library kernel fold into its epilogue when the catalog allows;
//  4. library nodes with the same merge key share one launch (dx/dw/db of a norm, dq/dk/dv);
//  5. launches are ordered depth-first from the outputs, so work runs close to its use.
import { invariant } from "../diagnostics.ts";
import { ELEMENTWISE_OPS, LEAF_OPS, MOVEMENT_OPS, consumers, postOrder, sameShape, topoSort, type Graph, type Node } from "../ir/node.ts";
import { catalog, elementwiseLaunchName, entryFor, residualOperand, type CatalogEntry, type EpilogueKind } from "./kernel-catalog.ts";
import { applyMovement, contiguousView, type View } from "./views.ts";

export interface KernelInput {
  node: Node;
  view: View;
}

export interface Launch {
  /** Catalog entry name. */
  kernel: string;
  /** Library kernels run for it (a kernel count counts these). */
  launches: readonly string[];
  /** Every node computed, inputs before users. */
  nodes: Node[];
  /** Nodes written to buffers. */
  outputs: Node[];
  /** Nodes read from buffers, each through a view of its buffer. */
  inputs: KernelInput[];
  epilogue: EpilogueKind[];
  /** A residual epilogue's operand: the output starts as a copy of it, or takes over its buffer. */
  accumulates?: Node;
  uniforms: Record<string, number>;
}

export interface Schedule {
  graph: Graph;
  launches: Launch[];
  /** How each graph output is read at the end (outputs may be views of a buffer). */
  outputViews: Map<string, View>;
}

const isElementwise = (n: Node) => ELEMENTWISE_OPS.has(n.op) || n.op === "concat";
const isView = (n: Node) => MOVEMENT_OPS.has(n.op) && n.op !== "concat";
const elementwiseEntry = catalog.find((e) => e.name === "elementwise")!;

export function schedule(g: Graph): Schedule {
  const order = topoSort(g.outputs.values());
  const users = consumers(order);
  const outputs = new Set(g.outputs.values());
  const materialized = new Set<Node>();
  const entryOf = (n: Node): CatalogEntry | undefined => (isElementwise(n) ? undefined : entryFor(n.op));

  // 1-2: which nodes live in buffers
  for (const n of order) {
    if (entryOf(n)) materialized.add(n);
    if (!isElementwise(n)) continue;
    const needsBuffer = outputs.has(n) || users.get(n)!.some((u) => isView(u) || (entryOf(u) && !entryOf(u)!.prologue));
    if (needsBuffer) materialized.add(n);
  }
  for (const n of outputs) if (n.op === "const") materialized.add(n);

  const views = new Map<Node, View>();
  const viewOf = (n: Node): View | undefined => views.get(n);
  for (const n of order) {
    if (LEAF_OPS.has(n.op) && n.op !== "const") views.set(n, contiguousView(n));
    else if (isView(n)) {
      const src = viewOf(n.inputs[0]);
      const v = src && applyMovement(n, src);
      if (!v) materialized.add(n); // not expressible as strides: copy it
      views.set(n, v ?? contiguousView(n));
    } else if (materialized.has(n)) views.set(n, contiguousView(n));
    const entry = entryOf(n);
    n.inputs.forEach((x, i) => {
      const v = viewOf(x);
      if (entry && v && isView(x) && !entry.acceptsView(n, i, v)) {
        materialized.add(x); // the kernel cannot read this view: copy it first
        views.set(x, contiguousView(x));
      }
    });
  }

  // 3: epilogue chains; `home` maps a node computed inside a library kernel to that kernel's node
  const home = new Map<Node, Node>();
  const epilogues = new Map<Node, EpilogueKind[]>();
  const accumulates = new Map<Node, Node>();
  const chainEnds = new Map<Node, Node>(); // library node -> the last node of its epilogue chain
  for (const k of order) {
    const entry = entryOf(k);
    if (!entry) continue;
    home.set(k, k);
    const kinds: EpilogueKind[] = [];
    let cur = k;
    for (;;) {
      const next = users.get(cur)!;
      // a node joins one chain only: two matmuls feeding one add keep the add in the first
      if (outputs.has(cur) || next.length !== 1 || home.has(next[0]) || !isElementwise(next[0]) || !sameShape(next[0].shape, k.shape)) break;
      const kind = entry.epilogue?.(next[0], cur, viewOf);
      if (!kind) break;
      kinds.push(kind);
      if (kind === "residual") accumulates.set(k, viewOf(residualOperand(next[0], cur))!.base);
      if (cur !== k) materialized.delete(cur);
      cur = next[0];
      home.set(cur, k);
    }
    chainEnds.set(k, cur);
    if (cur !== k) {
      materialized.delete(k);
      materialized.add(cur);
      views.set(cur, contiguousView(cur));
    }
    epilogues.set(k, kinds);
  }

  // groups: one per library node, elementwise buffer or copy
  const groupOf = new Map<Node, number>(); // buffer node -> group
  const groups: { anchor: Node; anchors: Node[]; outputs: Node[] }[] = [];
  const keyed = new Map<string, number>();
  for (const n of order) {
    const entry = entryOf(n);
    if (entry) {
      const key = entry.mergeKey?.(n);
      const existing = key === undefined ? undefined : keyed.get(key);
      const id = existing ?? groups.push({ anchor: n, anchors: [], outputs: [] }) - 1;
      if (key !== undefined) keyed.set(key, id);
      groups[id].outputs.push(chainEnds.get(n)!);
      groups[id].anchors.push(n);
    } else if (materialized.has(n) && !home.has(n)) groups.push({ anchor: n, anchors: [], outputs: [n] });
  }
  groups.forEach((grp, id) => grp.outputs.forEach((o) => groupOf.set(o, id)));

  // members and inputs of each group
  const built = groups.map((grp) => collect(grp.outputs, (n) => groupOf.get(n) !== undefined || LEAF_OPS.has(n.op) || isView(n), viewOf));
  built.forEach(({ nodes }, id) => {
    const library = nodes.filter((n) => entryOf(n) && entryOf(n) !== elementwiseEntry);
    invariant(library.every((n) => groups[id].anchors.includes(n)), `launch of %${groups[id].anchor.id} computes another library op`);
  });
  const producers = built.map((b) => [...new Set(b.inputs.map((i) => groupOf.get(i.view.base)).filter((x): x is number => x !== undefined))]);

  // 5: depth-first from the outputs
  const roots: number[] = [];
  const outputViews = new Map<string, View>();
  for (const [name, n] of g.outputs) {
    const v = viewOf(n);
    invariant(v, `output ${name} has no buffer`);
    outputViews.set(name, v);
    const producer = groupOf.get(v.base);
    if (producer !== undefined) roots.push(producer);
  }
  const ordered = postOrder(roots, (id) => producers[id]);

  const launches = ordered.map((id): Launch => {
    const { anchor, anchors, outputs: outs } = groups[id];
    const { nodes, inputs } = built[id];
    const entry = entryOf(anchor) ?? elementwiseEntry;
    const inKernel = new Set(nodes);
    const name = entry === elementwiseEntry ? elementwiseLaunchName(outs[0], (n) => inKernel.has(n)) : undefined;
    return {
      kernel: entry.name,
      launches: name ? [name] : entry.launches(anchors),
      nodes,
      outputs: outs,
      inputs,
      epilogue: epilogues.get(anchor) ?? [],
      accumulates: accumulates.get(anchor),
      uniforms: entry.uniforms(entryOf(anchor) ? anchor : outs[0]),
    };
  });
  return { graph: g, launches, outputViews };
}

/** The nodes a group computes (walking up from its outputs to buffers) and the buffers it reads. */
function collect(outs: readonly Node[], isBuffer: (n: Node) => boolean, viewOf: (n: Node) => View | undefined): { nodes: Node[]; inputs: KernelInput[] } {
  const own = new Set(outs);
  const inputs = new Map<Node, KernelInput>();
  const stop = (n: Node) => {
    if (own.has(n) || n.op === "const" || !isBuffer(n)) return false;
    inputs.set(n, { node: n, view: viewOf(n)! });
    return true;
  };
  const nodes = topoSort(outs, stop);
  return { nodes, inputs: [...inputs.values()] };
}
