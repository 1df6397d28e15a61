// Fusion and scheduling: the graph becomes an ordered list of kernel launches. Decisions, in order:
//  1. elementwise nodes are computed inside the kernels that read them (recomputed per kernel)
//     unless a library kernel, a view or a graph output needs them in a buffer;
//  2. movement ops are strided views of a buffer (no kernel) unless a reader cannot take the view;
//  3. elementwise chains after a library kernel fold into its epilogue when the catalog allows;
//     a small-K matmul added to another matmul's result (a LoRA up-projection) is computed in
//     that matmul's epilogue rather than launched;
//  4. library nodes with the same merge key share one launch (dx/dw/db of a norm, dq/dk/dv);
//  5. a generated kernel binds at most MAX_KERNEL_STORAGE_BUFFERS buffers: part of an expression
//     that reads more is written to a buffer by a launch of its own;
//  6. launches are ordered depth-first from the outputs, so work runs close to its use.
import { invariant } from "../diagnostics.ts";
import { ELEMENTWISE_OPS, LEAF_OPS, MOVEMENT_OPS, consumers, postOrder, sameShape, topoSort, type Graph, type Node } from "../ir/node.ts";
import { catalog, elementwiseLaunchName, entryFor, isLowRankProduct, residualOperand, type CatalogEntry, type EpilogueKind } from "./kernel-catalog.ts";
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
  /** The library nodes the launch runs (none for an elementwise kernel); the rest are their epilogues. */
  anchors: readonly Node[];
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

/** The view through which `launch` reads input node `n`. */
export function inputView(launch: Launch, n: Node): View {
  const input = launch.inputs.find((i) => i.node === n);
  invariant(input, `launch ${launch.launches.join(",")} does not read %${n.id}`);
  return input.view;
}

/**
 * The most storage buffers one kernel binds, its outputs included: WebGPU guarantees every device
 * 8 per shader stage (maxStorageBuffersPerShaderStage), and a schedule is the same for every device.
 */
export const MAX_KERNEL_STORAGE_BUFFERS = 8;

export interface Schedule {
  graph: Graph;
  launches: Launch[];
  /** How each graph output is read at the end (outputs may be views of a buffer). */
  outputViews: Map<string, View>;
}

const isElementwise = (n: Node) => ELEMENTWISE_OPS.has(n.op) || n.op === "concat";
const isView = (n: Node) => MOVEMENT_OPS.has(n.op) && n.op !== "concat";
const elementwiseEntry = catalog.find((e) => e.name === "elementwise")!;
// The library (or generated reduce) kernel a node anchors; elementwise nodes anchor none.
const entryOf = (n: Node): CatalogEntry | undefined => (isElementwise(n) ? undefined : entryFor(n.op));

// What the fusion steps decide, shared between them.
interface Fusion {
  order: Node[];
  users: Map<Node, Node[]>;
  outputs: Set<Node>;
  // nodes written to a buffer
  materialized: Set<Node>;
  // how each buffer-backed node (leaf, buffer or view of one) is read
  views: Map<Node, View>;
  // small-K matmuls another matmul's epilogue computes (no buffer, no launch of their own): every
  // one offerLowRank offers, until fuseEpilogues ends; after it, only those a chain absorbed
  lowRank: Set<Node>;
}

// A library node with the epilogue chain fused after it.
interface Chain {
  end: Node;
  kinds: EpilogueKind[];
  accumulates?: Node;
}

interface Group {
  anchors: Node[];
  outputs: Node[];
}

export function schedule(g: Graph): Schedule {
  const order = topoSort(g.outputs.values());
  const f: Fusion = { order, users: consumers(order), outputs: new Set(g.outputs.values()), materialized: new Set(), views: new Map(), lowRank: new Set() };
  chooseBuffers(f);
  offerLowRank(f);
  resolveViews(f);
  const chains = fuseEpilogues(f);
  const { groups, groupOf, built } = fitBindings(f, chains);
  built.forEach(({ nodes }, id) => {
    const stray = nodes.find((n) => entryOf(n) && !groups[id].anchors.includes(n) && !f.lowRank.has(n));
    invariant(!stray, `a launch computes %${stray?.id} (${stray?.op}), which has its own kernel`);
  });

  // 6: launches depth-first from the outputs, so work runs right before its first use
  const producers = built.map((b) => [...new Set(b.inputs.map((i) => groupOf.get(i.view.base)).filter((x): x is number => x !== undefined))]);
  const roots: number[] = [];
  const outputViews = new Map<string, View>();
  for (const [name, n] of g.outputs) {
    const v = f.views.get(n);
    invariant(v, `output ${name} has no buffer`);
    outputViews.set(name, v);
    const producer = groupOf.get(v.base);
    if (producer !== undefined) roots.push(producer);
  }
  const launches = postOrder(roots, (id) => producers[id]).map((id): Launch => {
    const { anchors, outputs } = groups[id];
    const { nodes, inputs } = built[id];
    const entry = anchors.length ? entryOf(anchors[0])! : elementwiseEntry;
    const inKernel = new Set(nodes);
    const chainsHere = anchors.map((a) => chains.get(a)!);
    return {
      kernel: entry.name,
      launches: anchors.length ? entry.launches(anchors) : [elementwiseLaunchName(outputs[0], (n) => inKernel.has(n))],
      anchors,
      nodes,
      outputs,
      inputs,
      epilogue: chainsHere.flatMap((c) => c.kinds),
      accumulates: chainsHere.find((c) => c.accumulates)?.accumulates,
      uniforms: entry.uniforms(anchors[0] ?? outputs[0]),
    };
  });
  return { graph: g, launches, outputViews };
}

// 1: library nodes write buffers; elementwise nodes only where a view, a library kernel or an output needs one.
function chooseBuffers({ order, users, outputs, materialized }: Fusion): void {
  for (const n of order) {
    if (entryOf(n)) materialized.add(n);
    else if (isElementwise(n) && (outputs.has(n) || users.get(n)!.some((u) => isView(u) || (entryOf(u) && !entryOf(u)!.prologue)))) materialized.add(n);
    else if (n.op === "const" && outputs.has(n)) materialized.add(n);
  }
}

// 3 (offer): a small-K matmul whose only reader adds it to a same-shaped value keeps no buffer for
// now; fuseEpilogues gives it to the matmul chain that reaches that add, or back a launch of its own.
function offerLowRank({ order, users, outputs, materialized, lowRank }: Fusion): void {
  for (const n of order) {
    const readers = users.get(n)!;
    if (!isLowRankProduct(n) || outputs.has(n) || readers.length !== 1) continue;
    const add = readers[0];
    if (add.op !== "add" || !sameShape(add.shape, n.shape) || add.inputs[0] === add.inputs[1]) continue;
    lowRank.add(n);
    materialized.delete(n);
  }
}

// 2: movement ops become strided views; one that no strides express, or a kernel cannot read, is copied.
function resolveViews({ order, materialized, views }: Fusion): void {
  for (const n of order) {
    if (LEAF_OPS.has(n.op) && n.op !== "const") views.set(n, contiguousView(n));
    else if (isView(n)) {
      const src = views.get(n.inputs[0]);
      const v = src && applyMovement(n, src);
      if (!v) materialized.add(n);
      views.set(n, v ?? contiguousView(n));
    } else if (materialized.has(n)) views.set(n, contiguousView(n));
    const entry = entryOf(n);
    n.inputs.forEach((x, i) => {
      const v = views.get(x);
      if (entry && v && isView(x) && !entry.acceptsView(n, i, v)) {
        materialized.add(x);
        views.set(x, contiguousView(x));
      }
    });
  }
}

// 3: the elementwise nodes after a library node join its launch while the catalog accepts them
// as epilogue and each is the only reader of the previous one; the last one is the buffer written.
// Offered low-rank matmuls go last: those no chain computed in its epilogue get a launch (and a
// chain) of their own after all, and leave `lowRank`.
function fuseEpilogues(f: Fusion): Map<Node, Chain> {
  const { order, users, outputs, materialized, views, lowRank } = f;
  const taken = new Set<Node>();
  const chains = new Map<Node, Chain>();
  const viewOf = (n: Node) => views.get(n);
  const offered = new Set(lowRank);
  const fuse = (k: Node, entry: CatalogEntry) => {
    const chain: Chain = { end: k, kinds: [] };
    for (;;) {
      const next = users.get(chain.end)!;
      // a node joins one chain only: two matmuls feeding one add keep the add in the first
      if (outputs.has(chain.end) || next.length !== 1 || taken.has(next[0]) || !isElementwise(next[0]) || !sameShape(next[0].shape, k.shape)) break;
      const kind = entry.epilogue?.(next[0], chain.end, viewOf, chain.kinds, offered);
      if (!kind) break;
      chain.kinds.push(kind);
      if (kind === "residual") chain.accumulates = views.get(residualOperand(next[0], chain.end))!.base;
      if (kind === "low-rank") {
        const product = next[0].inputs.find((i) => i !== chain.end)!;
        offered.delete(product);
      }
      materialized.delete(chain.end);
      chain.end = next[0];
      taken.add(chain.end);
    }
    materialized.add(chain.end);
    views.set(chain.end, contiguousView(chain.end));
    chains.set(k, chain);
  };
  for (const k of order) {
    const entry = entryOf(k);
    if (entry && !lowRank.has(k)) fuse(k, entry);
  }
  // still offered: no chain absorbed it
  for (const k of order) {
    if (!lowRank.has(k) || !offered.has(k)) continue;
    offered.delete(k);
    lowRank.delete(k);
    fuse(k, entryOf(k)!);
  }
  return chains;
}

// 4: one group per library node (those with equal merge keys share one), elementwise buffer or copy.
function formGroups({ order, materialized, lowRank }: Fusion, chains: Map<Node, Chain>): Group[] {
  const groups: Group[] = [];
  const keyed = new Map<string, number>();
  const inChain = new Set([...chains.values()].map((c) => c.end));
  for (const n of order) {
    const entry = entryOf(n);
    if (entry && !lowRank.has(n)) {
      const key = entry.mergeKey?.(n);
      const id = (key === undefined ? undefined : keyed.get(key)) ?? groups.push({ anchors: [], outputs: [] }) - 1;
      if (key !== undefined) keyed.set(key, id);
      groups[id].anchors.push(n);
      groups[id].outputs.push(chains.get(n)!.end);
    } else if (materialized.has(n) && !inChain.has(n)) groups.push({ anchors: [], outputs: [n] });
  }
  return groups;
}

// What a group computes and reads, and which group writes each buffer.
interface Grouping {
  groups: Group[];
  // buffer node -> group
  groupOf: Map<Node, number>;
  built: Built[];
}

interface Built {
  nodes: Node[];
  inputs: KernelInput[];
}

// 4 and 5: the groups, formed again after each round of buffers the bound adds: a generated kernel
// (elementwise or reduce; a library kernel's bindings are its own) that would bind more than
// MAX_KERNEL_STORAGE_BUFFERS writes one node of its expression to a buffer (its own launch), and
// reads that instead of the buffers under it.
function fitBindings(f: Fusion, chains: Map<Node, Chain>): Grouping {
  for (;;) {
    const groups = formGroups(f, chains);
    const groupOf = new Map<Node, number>();
    groups.forEach((grp, id) => grp.outputs.forEach((o) => groupOf.set(o, id)));
    const built = groups.map((grp) => collect(grp.outputs, (n) => groupOf.has(n) || LEAF_OPS.has(n.op) || isView(n), f.views));
    const generated = (grp: Group) => !grp.anchors.length || entryOf(grp.anchors[0])!.prologue;
    // one binding a buffer read (codegen/fused-kernel.ts), however many views of it, and the output
    const bound = (grp: Group, id: number) => new Set(built[id].inputs.map((i) => i.view.base)).size + grp.outputs.length;
    const cuts = groups.flatMap((grp, id) => (generated(grp) && bound(grp, id) > MAX_KERNEL_STORAGE_BUFFERS ? [cut(built[id], grp.outputs)] : []));
    if (!cuts.length) return { groups, groupOf, built };
    for (const n of cuts) {
      f.materialized.add(n);
      f.views.set(n, contiguousView(n));
    }
  }
}

// The node of a kernel's expression to write to a buffer: of the elementwise nodes it computes
// for its output, the first whose own expression reads the most buffers (at least two) while
// fitting a kernel of its own. One exists while a kernel binds too many: every elementwise node
// has at most MAX_KERNEL_STORAGE_BUFFERS - 1 inputs (concat-parts.ts bounds a concat's parts).
function cut({ nodes, inputs }: Built, outputs: readonly Node[]): Node {
  const bufferOf = new Map(inputs.map((i) => [i.node, i.view.base]));
  const reads = new Map<Node, ReadonlySet<Node>>(); // node -> buffers its expression reads
  let best: Node | undefined;
  for (const n of nodes) {
    const own = new Set(n.inputs.flatMap((x) => (bufferOf.has(x) ? [bufferOf.get(x)!] : [...(reads.get(x) ?? [])])));
    reads.set(n, own);
    const fits = own.size + 1 <= MAX_KERNEL_STORAGE_BUFFERS;
    if (isElementwise(n) && !outputs.includes(n) && fits && own.size > (best ? reads.get(best)!.size : 1)) best = n;
  }
  invariant(best, `no part of the kernel computing %${outputs[0].id} fits ${MAX_KERNEL_STORAGE_BUFFERS} storage buffers`);
  return best;
}

// The nodes a group computes (walking up from its outputs to buffers) and the buffers it reads.
function collect(outs: readonly Node[], isBuffer: (n: Node) => boolean, views: Map<Node, View>): Built {
  const own = new Set(outs);
  const inputs = new Map<Node, KernelInput>();
  const stop = (n: Node) => {
    if (own.has(n) || n.op === "const" || !isBuffer(n)) return false;
    inputs.set(n, { node: n, view: views.get(n)! });
    return true;
  };
  const nodes = topoSort(outs, stop);
  return { nodes, inputs: [...inputs.values()] };
}
