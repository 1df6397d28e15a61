// Simplification and folding rule tables. Autodiff leaves many trivial nodes behind (x*1, x+0,
// zero-padded concats, reshapes of reshapes); these rules remove them before scheduling. The fold
// rules move work into the attributes of a neighbouring library op (attention's scale).
import * as b from "../ir/build.ts";
import { evalNode } from "../ir/interpret.ts";
import { BINARY_OPS, UNARY_OPS, sameShape, type Node } from "../ir/node.ts";
import type { Rule } from "./rewrite.ts";

const isConst = (n: Node, value?: number) => n.op === "const" && (value === undefined || n.attrs.value === value);
const constLike = (value: number, n: Node) => b.constant(value, n.shape, n.dtype);

function rule(name: string, apply: (n: Node) => Node | undefined): Rule {
  return { name, apply };
}

// Folds an elementwise op whose inputs are all constants.
const foldConstants = rule("fold-constants", (n) => {
  if (!(UNARY_OPS.has(n.op) || BINARY_OPS.has(n.op)) || !n.inputs.every((i) => isConst(i))) return undefined;
  const value = evalNode(n, n.inputs.map((i) => Float64Array.of(i.attrs.value!)))[0];
  return constLike(value, n);
});

export const simplifyRules: readonly Rule[] = [
  foldConstants,
  rule("x+0", (n) => (n.op === "add" && isConst(n.inputs[1], 0) ? n.inputs[0] : n.op === "add" && isConst(n.inputs[0], 0) ? n.inputs[1] : undefined)),
  rule("x-0", (n) => (n.op === "sub" && isConst(n.inputs[1], 0) ? n.inputs[0] : undefined)),
  rule("0-x", (n) => (n.op === "sub" && isConst(n.inputs[0], 0) ? b.neg(n.inputs[1]) : undefined)),
  rule("x*1", (n) => (n.op === "mul" && isConst(n.inputs[1], 1) ? n.inputs[0] : n.op === "mul" && isConst(n.inputs[0], 1) ? n.inputs[1] : undefined)),
  rule("x*0", (n) => (n.op === "mul" && (isConst(n.inputs[0], 0) || isConst(n.inputs[1], 0)) ? constLike(0, n) : undefined)),
  rule("x/1", (n) => (n.op === "div" && isConst(n.inputs[1], 1) ? n.inputs[0] : undefined)),
  rule("x/c", (n) => (n.op === "div" && isConst(n.inputs[1]) ? b.mul(n.inputs[0], constLike(1 / n.inputs[1].attrs.value!, n)) : undefined)),
  rule("c*x", (n) => (n.op === "mul" && isConst(n.inputs[0]) && !isConst(n.inputs[1]) ? b.mul(n.inputs[1], n.inputs[0]) : undefined)),
  rule("(x*c1)*c2", (n) => {
    const [x, c] = n.inputs;
    if (n.op !== "mul" || !isConst(c) || x.op !== "mul" || !isConst(x.inputs[1])) return undefined;
    return b.mul(x.inputs[0], constLike(c.attrs.value! * x.inputs[1].attrs.value!, n));
  }),
  rule("neg(neg(x))", (n) => (n.op === "neg" && n.inputs[0].op === "neg" ? n.inputs[0].inputs[0] : undefined)),
  rule("x+neg(y)", (n) => (n.op === "add" && n.inputs[1].op === "neg" ? b.sub(n.inputs[0], n.inputs[1].inputs[0]) : undefined)),
  rule("where(c,x,x)", (n) => (n.op === "where" && n.inputs[1] === n.inputs[2] ? n.inputs[1] : undefined)),
  rule("cast to same dtype", (n) => (n.op === "cast" && n.attrs.dtype === n.inputs[0].dtype ? n.inputs[0] : undefined)),
  rule("movement of a constant", (n) =>
    ["reshape", "broadcast", "slice", "permute"].includes(n.op) && isConst(n.inputs[0]) ? constLike(n.inputs[0].attrs.value!, n) : undefined,
  ),
  rule("sum of a constant", (n) =>
    n.op === "sum" && isConst(n.inputs[0]) ? constLike(n.inputs[0].attrs.value! * n.inputs[0].shape[n.attrs.axis!], n) : undefined,
  ),
  rule("no-op movement", (n) => {
    const x = n.inputs[0];
    if ((n.op === "reshape" || n.op === "broadcast") && sameShape(n.shape, x.shape)) return x;
    if (n.op === "permute" && n.attrs.perm!.every((p, i) => p === i)) return x;
    if (n.op === "slice" && n.attrs.start === 0 && n.attrs.end === x.shape[n.attrs.axis!]) return x;
    if (n.op === "concat" && n.inputs.length === 1) return x;
    return undefined;
  }),
  // reshapes commute with elementwise ops: reshape(a) + reshape(b) -> reshape(a + b)
  rule("binary op of reshapes", (n) => {
    const [x, y] = n.inputs;
    if (!BINARY_OPS.has(n.op) || x.op !== "reshape" || y.op !== "reshape" || !sameShape(x.inputs[0].shape, y.inputs[0].shape)) return undefined;
    return b.reshape(b.withInputs(n, [x.inputs[0], y.inputs[0]]), n.shape);
  }),
  rule("reshape(reshape(x))", (n) => (n.op === "reshape" && n.inputs[0].op === "reshape" ? b.reshape(n.inputs[0].inputs[0], n.shape) : undefined)),
  rule("permute(permute(x))", (n) => {
    if (n.op !== "permute" || n.inputs[0].op !== "permute") return undefined;
    const inner = n.inputs[0].attrs.perm!;
    return b.permute(n.inputs[0].inputs[0], n.attrs.perm!.map((p) => inner[p]));
  }),
  // sums over two neighbouring axes (the gradient of a bias broadcast over (B, T)) -> one sum
  rule("sum(sum(x)) over neighbouring axes", (n) => {
    const inner = n.inputs[0];
    if (n.op !== "sum" || inner.op !== "sum" || Math.abs(n.attrs.axis! - inner.attrs.axis!) !== 1) return undefined;
    const x = inner.inputs[0];
    const lo = Math.min(n.attrs.axis!, inner.attrs.axis!);
    const merged = [...x.shape.slice(0, lo), x.shape[lo] * x.shape[lo + 1], ...x.shape.slice(lo + 2)];
    return b.reshape(b.sum(b.reshape(x, merged), lo), n.shape);
  }),
  rule("concat of zeros", (n) => (n.op === "concat" && n.inputs.every((i) => isConst(i, 0)) ? constLike(0, n) : undefined)),
  // gradients of slices of one tensor: concat(a, 0, 0) + concat(0, b) -> concat(a, b') when the
  // non-zero parts do not overlap
  rule("add of concats with disjoint parts", (n) => {
    const [x, y] = n.inputs;
    if (n.op !== "add" || x.op !== "concat" || y.op !== "concat" || x.attrs.axis !== y.attrs.axis) return undefined;
    const axis = x.attrs.axis!;
    const parts = (c: Node) => {
      let at = 0;
      return c.inputs.map((node) => ({ node, start: at, end: (at += node.shape[axis]) }));
    };
    const nonZero = [...parts(x), ...parts(y)].filter((p) => !isConst(p.node, 0)).sort((p, q) => p.start - q.start);
    if (nonZero.some((p, i) => i > 0 && p.start < nonZero[i - 1].end)) return undefined;
    const zeros = (len: number) => b.constant(0, n.shape.map((d, i) => (i === axis ? len : d)), n.dtype);
    const out: Node[] = [];
    let at = 0;
    for (const p of nonZero) {
      if (p.start > at) out.push(zeros(p.start - at));
      out.push(p.node);
      at = p.end;
    }
    if (at < n.shape[axis]) out.push(zeros(n.shape[axis] - at));
    return b.concat(out, axis);
  }),
  // concat(a, 0) + concat(b, c) -> concat(a + b, 0 + c)
  rule("add of aligned concats", (n) => {
    const [x, y] = n.inputs;
    if (n.op !== "add" || x.op !== "concat" || y.op !== "concat" || x.attrs.axis !== y.attrs.axis || x.inputs.length !== y.inputs.length) return undefined;
    const axis = x.attrs.axis!;
    if (!x.inputs.every((xi, i) => xi.shape[axis] === y.inputs[i].shape[axis])) return undefined;
    return b.concat(x.inputs.map((xi, i) => b.add(xi, y.inputs[i])), axis);
  }),
  // concat(a, b) where a and b are adjacent slices of the same tensor -> one slice
  rule("concat of adjacent slices", (n) => {
    if (n.op !== "concat" || n.inputs.length < 2) return undefined;
    const axis = n.attrs.axis!;
    const src = n.inputs[0].inputs[0];
    const contiguous = n.inputs.every((s, i) => s.op === "slice" && s.inputs[0] === src && s.attrs.axis === axis && (i === 0 || s.attrs.start === n.inputs[i - 1].attrs.end));
    return contiguous ? b.slice(src, axis, n.inputs[0].attrs.start!, n.inputs[n.inputs.length - 1].attrs.end!) : undefined;
  }),
];

/** attention(q * c) -> attention with scale * c: the scaling runs inside the attention kernel. */
export const foldRules: readonly Rule[] = [
  rule("fold scale into attention", (n) => {
    const q = n.inputs[0];
    if (n.op !== "attention" || q.op !== "mul" || !isConst(q.inputs[1])) return undefined;
    const attention = { ...n.attrs.attention!, scale: n.attrs.attention!.scale * q.inputs[1].attrs.value! };
    return b.attention(q.inputs[0], n.inputs[1], n.inputs[2], attention, n.inputs.slice(3));
  }),
];
