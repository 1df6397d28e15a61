// WGSL for the kernels the scheduler generates rather than takes from the library: an
// "elementwise" launch (a fused expression over strided views of its input buffers, each buffer
// bound once, one invocation per output element) and a "reduce" launch (sum, mean or max over one axis of such
// an expression). Every node becomes a WGSL function of the multi-index it is evaluated at, so
// concat can shift the index and reductions can loop over their axis. Shapes, strides and
// offsets are uniforms: the same expression over new sizes reuses the compiled pipeline.
import { invariant } from "../diagnostics.ts";
import { numel, type Node } from "../ir/node.ts";
import { MAX_KERNEL_STORAGE_BUFFERS, type Launch } from "../passes/schedule.ts";
import { elementwiseKernel } from "../../stdlib/kernels/elementwise.ts";
import type { StorageDType } from "../../stdlib/kernels/dtype.ts";
import type { KernelBinding, KernelSpec, UniformType } from "../../stdlib/kernels/kernel.ts";

export interface FusedKernel {
  spec: KernelSpec;
  uniforms: Record<string, number>;
  /** The buffers read, `in0`, `in1`, ... in binding order: one binding a buffer, however many views of it the expression reads. */
  inputs: { binding: string; base: Node }[];
  output: { binding: "out"; node: Node };
}

const unary: Record<string, (x: string) => string> = {
  neg: (x) => `-(${x})`,
  exp: (x) => `exp(${x})`,
  log: (x) => `log(${x})`,
  sqrt: (x) => `sqrt(${x})`,
  rsqrt: (x) => `inverseSqrt(${x})`,
  tanh: (x) => `tanh(${x})`,
  sigmoid: (x) => `(1.0 / (1.0 + exp(-(${x}))))`,
  silu: (x) => `silu_f(${x})`,
  gelu_tanh: (x) => `gelu_tanh_f(${x})`,
  cast: (x) => x,
};

const binary: Record<string, (a: string, b: string) => string> = {
  add: (a, b) => `(${a} + ${b})`,
  sub: (a, b) => `(${a} - ${b})`,
  mul: (a, b) => `(${a} * ${b})`,
  div: (a, b) => `(${a} / ${b})`,
  max: (a, b) => `max(${a}, ${b})`,
  greater: (a, b) => `select(0.0, 1.0, ${a} > ${b})`,
};

const helpers = `
fn runtime_bits(b: u32) -> u32 { return b; }
fn silu_f(x: f32) -> f32 { return x / (1.0 + exp(-x)); }
// tanh through exp of a non-positive argument: no overflow for large |x|
fn gelu_tanh_f(x: f32) -> f32 {
  let t = 0.7978845608028654 * (x + 0.044715 * x * x * x);
  let e = exp(-2.0 * abs(t));
  return 0.5 * x * (1.0 + sign(t) * (1.0 - e) / (1.0 + e));
}`;

/**
 * An exact f32 value. Finite values are bit patterns; inf and NaN go through a function call,
 * because WGSL rejects a constant expression that evaluates to a non-finite value.
 */
function f32Literal(value: number): string {
  const bits = new Uint32Array(Float32Array.of(value).buffer)[0];
  return Number.isFinite(value) ? `bitcast<f32>(${bits}u)` : `bitcast<f32>(runtime_bits(${bits}u))`;
}

function storageDType(n: Node): StorageDType {
  return n.dtype;
}

/** Whether `launch` runs a kernel generated from its expression (fusedKernel), not a library kernel. */
export function isGeneratedLaunch(launch: Launch): boolean {
  return launch.kernel === "elementwise" || launch.kernel === "reduce";
}

export function fusedKernel(launch: Launch): FusedKernel {
  invariant(isGeneratedLaunch(launch), `no generated kernel for ${launch.kernel}`);
  invariant(launch.outputs.length === 1, `a generated kernel writes one output, not ${launch.outputs.length}`);
  const root = launch.outputs[0];
  const rank = Math.max(1, root.shape.length);
  const uniforms: Record<string, number> = {};
  const uniformTypes: Record<string, UniformType> = {};
  const setUniform = (name: string, value: number) => {
    uniforms[name] = value;
    uniformTypes[name] = "u32";
  };
  const functions: string[] = [];
  const nameOf = new Map<Node, string>();
  const bindings: KernelBinding[] = [];
  const inputs: FusedKernel["inputs"] = [];
  const idxType = `array<u32, ${rank}>`;

  // views of buffers: view i reads binding in<k> of its buffer at its own offset and strides
  const bindingOf = new Map<Node, string>();
  launch.inputs.forEach(({ node, view }, i) => {
    let binding = bindingOf.get(view.base);
    if (!binding) {
      binding = `in${bindingOf.size}`;
      bindingOf.set(view.base, binding);
      bindings.push({ name: binding, dtype: storageDType(view.base), access: "read" });
      inputs.push({ binding, base: view.base });
    }
    setUniform(`off${i}`, view.offset);
    const terms = view.strides.map((s, d) => {
      setUniform(`s${i}_${d}`, s);
      return `idx[${d}] * u.s${i}_${d}`;
    });
    const at = [`u.off${i}`, ...terms].join(" + ");
    const load = view.base.dtype === "i32" ? `f32(${binding}[${at}])` : `load_${binding}(${at})`;
    functions.push(`fn v${i}(idx: ${idxType}) -> f32 { return ${load}; }`);
    nameOf.set(node, `v${i}`);
  });

  const call = (n: Node, idx = "idx") => {
    const f = nameOf.get(n);
    invariant(f, `node %${n.id} (${n.op}) is neither computed nor read by this kernel`);
    return `${f}(${idx})`;
  };

  // local numbering, so the same expression built twice has the same text (and pipeline)
  launch.nodes.forEach((n, local) => {
    if (nameOf.has(n)) return;
    const fn = `n${local}`;
    const [a, b, c] = n.inputs;
    let body: string;
    if (n.op === "const") body = `return ${f32Literal(n.attrs.value!)};`;
    else if (unary[n.op]) body = `return ${unary[n.op](call(a))};`;
    else if (binary[n.op]) body = `return ${binary[n.op](call(a), call(b))};`;
    else if (n.op === "where") body = `return select(${call(c)}, ${call(b)}, ${call(a)} != 0.0);`;
    else if (n.op === "concat") {
      const axis = n.attrs.axis!;
      let start = 0;
      const parts = n.inputs.map((x, j) => {
        const name = `c${local}_${j}`;
        setUniform(name, start);
        start += x.shape[axis];
        return { x, name };
      });
      const branches = parts
        .slice(1)
        .reverse()
        .map(({ x, name }) => `  if (idx[${axis}] >= u.${name}) { var j = idx; j[${axis}] = j[${axis}] - u.${name}; return ${call(x, "j")}; }`);
      body = `${branches.join("\n")}\n  return ${call(parts[0].x)};`;
    } else if (n.op === "slice") {
      // a slice a launch must store (a whole-buffer reader's operand): its rows from `start` on
      setUniform(`s${local}`, n.attrs.start!);
      body = `var j = idx;
  j[${n.attrs.axis!}] = j[${n.attrs.axis!}] + u.s${local};
  return ${call(a, "j")};`;
    } else if (n.op === "sum" || n.op === "mean" || n.op === "reduce_max") {
      const axis = n.attrs.axis!;
      setUniform(`len${local}`, a.shape[axis]);
      const init = n.op === "reduce_max" ? f32Literal(-Infinity) : "0.0";
      const step = n.op === "reduce_max" ? `acc = max(acc, ${call(a, "j")});` : `acc = acc + ${call(a, "j")};`;
      const result = n.op === "mean" ? `acc / f32(u.len${local})` : "acc";
      body = `var acc = ${init};
  var j = idx;
  for (var k = 0u; k < u.len${local}; k = k + 1u) { j[${axis}] = k; ${step} }
  return ${result};`;
    } else invariant(false, `a generated kernel cannot compute ${n.op}`);
    functions.push(`fn ${fn}(idx: ${idxType}) -> f32 {\n  ${body}\n}`);
    nameOf.set(n, fn);
  });

  // the flat output index -> multi-index in the output's shape
  const dims = root.shape.length ? root.shape : [1];
  dims.forEach((d, i) => setUniform(`o${i}`, d));
  const unflatten = dims
    .map((_, d) => dims.length - 1 - d)
    .map((d) => `  idx[${d}] = rest % u.o${d};\n  rest = rest / u.o${d};`)
    .join("\n");
  const store = root.dtype === "i32" ? `out[i] = i32(${call(root)});` : `store_out(i, ${call(root)});`;
  bindings.push({ name: "out", dtype: storageDType(root), access: "read_write" });
  // the scheduler counts these bindings to keep a launch within the bound (schedule.ts, step 5)
  invariant(bindings.length <= MAX_KERNEL_STORAGE_BUFFERS, `a generated kernel binds ${bindings.length} storage buffers, more than the scheduler allows (${MAX_KERNEL_STORAGE_BUFFERS})`);
  const declarations = `${helpers}\n${functions.join("\n")}`;
  const spec = elementwiseKernel({
    name: launch.kernel === "reduce" ? "fused_reduce" : "fused_elementwise",
    variant: { expression: fingerprint(declarations + store + bindings.map((x) => x.dtype).join(",")) },
    bindings,
    uniforms: uniformTypes,
    declarations,
    perElement: `  var idx: ${idxType};\n  var rest = i;\n${unflatten}\n  ${store}`,
  });
  uniforms.n = numel(root.shape);
  return { spec, uniforms, inputs, output: { binding: "out", node: root } };
}

/** FNV-1a of the generated text: the pipeline cache key of an expression. */
function fingerprint(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h.toString(16).padStart(8, "0");
}
