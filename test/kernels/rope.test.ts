// RoPE: the host tables and float64 reference against PyTorch fixtures of every family
// (spec/golden/make_rope_alibi.py), and the kernel, forward and backward, against the reference.
import { readFileSync } from "node:fs";
import { suite } from "uvu";
import * as assert from "uvu/assert";
import { runKernel } from "../../runtime/gpu/batch.ts";
import { createTensor, readFloats, uploadTensor } from "../../runtime/gpu/tensor.ts";
import { Random } from "../../runtime/random.ts";
import { denseView, fusedQkvViews, gatherView } from "../../stdlib/kernels/attention-layout.ts";
import {
  glmPositions,
  inverseFrequencies,
  ROPE_FAMILIES,
  ropeBackwardReference,
  ropeForwardReference,
  ropeKernel,
  ropeTable,
  ropeTablePrecision,
  ropeUniforms,
  segmentDim,
  type RopeFamilyName,
} from "../../stdlib/kernels/rope.ts";
import { assertClose } from "../support/numeric.ts";
import { randomValues, toleranceFor, withGpu } from "./gpu-harness.ts";

const test = suite("rope");
const fixture = JSON.parse(readFileSync(new URL("../fixtures/rope/rope_alibi.json", import.meta.url), "utf8"));
const FAMILIES = Object.keys(ROPE_FAMILIES) as RopeFamilyName[];

/** The table's [cos], [sin] values at the fixture's positions. */
function tableAt(table: Float32Array, dim: number, positions: number[]): { cos: number[]; sin: number[] } {
  const half = dim / 2;
  const cos: number[] = [];
  const sin: number[] = [];
  for (const p of positions)
    for (let i = 0; i < half; i++) {
      cos.push(table[(p * half + i) * 2]);
      sin.push(table[(p * half + i) * 2 + 1]);
    }
  return { cos, sin };
}

for (const [group, dtype] of [["tables", "f32"], ["half_tables", "f16"]] as const) {
  test(`${dtype} model: inverse frequencies equal PyTorch's bit for bit, and so do f16 cos/sin tables`, () => {
    for (const [name, ref] of Object.entries(fixture[group]) as [RopeFamilyName, { dim: number; positions: number[]; inv_freq: number[]; cos: number[]; sin: number[] }][]) {
      const precision = ropeTablePrecision(name, dtype);
      const { base } = ROPE_FAMILIES[name];
      assert.equal(Array.from(inverseFrequencies(ref.dim, base, precision)), ref.inv_freq.map(Math.fround), `${name} inv_freq`);
      const got = tableAt(ropeTable(ref.dim, base, Math.max(...ref.positions) + 1, precision), ref.dim, ref.positions);
      const [cos, sin] = [ref.cos.map(Math.fround), ref.sin.map(Math.fround)];
      if (dtype === "f16") {
        // Rounded to f16, the tables agree exactly.
        assert.equal(got.cos, cos, `${name} cos table f16`);
        assert.equal(got.sin, sin, `${name} sin table f16`);
      } else {
        // torch's f32 cos/sin are not correctly rounded: some values differ in the last bit.
        assertClose(got.cos, cos, 2e-7, `${name} cos table f32`);
        assertClose(got.sin, sin, 2e-7, `${name} sin table f32`);
      }
    }
  });
}

test("GLM position streams follow get_position_ids", () => {
  const streams = Array.from(glmPositions(6, 4, 3));
  assert.equal(streams, fixture.rotations.chatglm.positions.flat());
});

/** (T, H, D) fixture rows as a dense (1, H, T, D) array. */
function toHeadMajor(values: number[], [T, H, D]: number[]): Float64Array {
  const out = new Float64Array(values.length);
  for (let t = 0; t < T; t++) for (let h = 0; h < H; h++) for (let d = 0; d < D; d++) out[(h * T + t) * D + d] = values[(t * H + h) * D + d];
  return out;
}

test("float64 reference reproduces each family's PyTorch rotation", () => {
  for (const name of FAMILIES) {
    const { layout, base } = ROPE_FAMILIES[name];
    const ref = fixture.rotations[name];
    const [T, H] = ref.shape;
    const positions = Uint32Array.from(ref.positions.flat());
    const table = ropeTable(segmentDim(layout), base, Math.max(...positions) + 1, ropeTablePrecision(name, "f32"));
    const y = ropeForwardReference(layout, toHeadMajor(ref.x, ref.shape), positions, table, 1, T, H);
    assertClose(y, toHeadMajor(ref.y, ref.shape), 1e-6, `${name} rotation`);
    const back = ropeBackwardReference(layout, y, positions, table, 1, T, H);
    assertClose(back, toHeadMajor(ref.x, ref.shape), 1e-6, `${name} inverse rotation restores x`);
  }
});

test(
  "kernel forward and backward match the reference for every family",
  withGpu(async (gpu) => {
    const rng = new Random(21);
    const [B, T, H] = [2, 7, 2];
    const dtypes = gpu.hasF16 ? (["f32", "f16"] as const) : (["f32"] as const);
    for (const name of FAMILIES)
      for (const dtype of dtypes) {
        const { layout, base } = ROPE_FAMILIES[name];
        const D = layout.headDim;
        // x is the K part of a fused (B, T, 3H, D) projection; y is a dense (B, H, T, D) tensor.
        const x = fusedQkvViews(T, H, H, D).k;
        const y = denseView("bhtd", T, H, D);
        const qkv = randomValues(rng, B * T * 3 * H * D, dtype);
        const positions = new Uint32Array(B * T * layout.streams);
        for (let i = 0; i < positions.length; i++) positions[i] = rng.int(i % 3 === 0 ? 4096 : 64);
        const rows = Math.max(...positions) + 1;
        const table = ropeTable(segmentDim(layout), base, rows, ropeTablePrecision(name, "f32"));
        const tensors = {
          x: uploadTensor(gpu, dtype, [qkv.length], qkv, "qkv"),
          y: createTensor(gpu, dtype, [B, H, T, D], "y"),
          positions: uploadTensor(gpu, "u32", [positions.length], positions, "positions"),
          rope_table: uploadTensor(gpu, "f32", [table.length], table, "rope_table"),
        };
        const spec = ropeKernel({ ...layout, dtype });
        const dense = gatherView(qkv, x, B, T, H, D);
        for (const direction of [1, -1] as const) {
          await runKernel(gpu, spec, ropeUniforms({ batch: B, length: T, heads: H, x, y, tableRows: rows, direction }), tensors);
          const reference = direction === 1 ? ropeForwardReference : ropeBackwardReference;
          const want = reference(layout, dense, positions, table, B, T, H);
          const got = gatherView(await readFloats(gpu, tensors.y), y, B, T, H, D);
          assertClose(got, want, toleranceFor(dtype), `${name} ${direction === 1 ? "forward" : "backward"} ${dtype}`);
        }
      }
  }),
);

test.run();
