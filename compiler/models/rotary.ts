// Rotary position embedding of queries or keys (B, T, H, D) as a family's position trait asks:
// half-rotation or interleaved pairs, partial rotary dims, one or two position streams (GLM 2D).
// Families whose reference uses exact-enough inverse frequencies get the IR's `rope` op; a family
// that rounds them (ChatGLM-6B stores them in f16, models.md §6.3) rotates by host-built cos/sin
// tables (family-inputs.ts) with elementwise ops, since the `rope` op has no precision attribute.
import * as b from "../ir/build.ts";
import type { Node } from "../ir/node.ts";
import type { Family, ModelDims } from "../../stdlib/families/family.ts";
import { usesRopeTables } from "./family-inputs.ts";

/** What the rotation reads: positions (B, T, streams), or cos/sin tables (B, T, streams, R/2). */
export interface RotaryInputs {
  positions: Node | null;
  cos: Node | null;
  sin: Node | null;
}

/** `x` rotated by its positions; unchanged for a family without RoPE (ALiBi). */
export function rotary(family: Family, dims: ModelDims, x: Node, inputs: RotaryInputs): Node {
  const position = family.position;
  if (position.kind !== "rope") return x;
  if (!usesRopeTables(family)) {
    const attrs = { style: position.pairing, rotaryDim: dims.rotaryDims, sections: position.streams, base: position.base, inverse: false };
    return b.rope(x, inputs.positions!, attrs);
  }
  return rotateByTables(x, inputs.cos!, inputs.sin!, position.pairing, dims.rotaryDims, position.streams);
}

/**
 * Each stream s owns the section [s·W, (s+1)·W) of the head (W = D / streams) and rotates its
 * first R dims: y0 = x0 cos - x1 sin, y1 = x1 cos + x0 sin, with pairs (i, i + R/2) for "half"
 * and (2i, 2i + 1) for "interleaved"; the rest of the section passes through.
 */
function rotateByTables(x: Node, cos: Node, sin: Node, pairing: "half" | "interleaved", R: number, streams: number): Node {
  const [B, T, H, D] = x.shape;
  const W = D / streams;
  const half = R / 2;
  const pairShape = [B, T, H, half];
  const sections = Array.from({ length: streams }, (_, s) => {
    const section = streams === 1 ? x : b.slice(x, 3, s * W, (s + 1) * W); // (B, T, H, W)
    const rot = R === W ? section : b.slice(section, 3, 0, R); // (B, T, H, R)
    const c = b.broadcast(b.slice(cos, 2, s, s + 1), pairShape); // (B, T, 1, R/2) -> (B, T, H, R/2)
    const sn = b.broadcast(b.slice(sin, 2, s, s + 1), pairShape);
    const [x0, x1] = pairing === "half" ? [b.slice(rot, 3, 0, half), b.slice(rot, 3, half, R)] : interleavedPairs(rot, pairShape);
    const y0 = b.sub(b.mul(x0, c), b.mul(x1, sn));
    const y1 = b.add(b.mul(x1, c), b.mul(x0, sn));
    const rotated = pairing === "half" ? b.concat([y0, y1], 3) : interleave(y0, y1, [B, T, H, R]);
    return R === W ? rotated : b.concat([rotated, b.slice(section, 3, R, W)], 3);
  });
  return streams === 1 ? sections[0] : b.concat(sections, 3);
}

/** Dims 2i and 2i+1 of (B, T, H, R), each as (B, T, H, R/2). */
function interleavedPairs(rot: Node, pairShape: number[]): [Node, Node] {
  const paired = b.reshape(rot, [...pairShape, 2]); // (B, T, H, R/2, 2)
  return [b.reshape(b.slice(paired, 4, 0, 1), pairShape), b.reshape(b.slice(paired, 4, 1, 2), pairShape)];
}

/** The inverse of `interleavedPairs`: (B, T, H, R/2) twice -> (B, T, H, R). */
function interleave(y0: Node, y1: Node, shape: number[]): Node {
  const column = [...y0.shape, 1];
  return b.reshape(b.concat([b.reshape(y0, column), b.reshape(y1, column)], 4), shape);
}
