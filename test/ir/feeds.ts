// Tiny transformer configurations standing in for the five families, and seeded random feeds
// for them: weights, tokens, labels and positions.
import type { TinyTransformer, TinyTransformerOptions } from "../../compiler/models/tiny-transformer.ts";
import { Random } from "../../runtime/random.ts";

const base = { vocab: 11, hidden: 8, layers: 2, heads: 2, kvHeads: 2, ffn: 12, batch: 2, seq: 5 };

/** Tiny stand-ins for each family's traits (models.md §1-§5). */
export const families: Record<string, TinyTransformerOptions> = {
  "baichuan-7b": { ...base, norm: "rms", position: { kind: "rope", style: "half" }, mlp: "swiglu", residual: "pre" },
  "baichuan-13b": { ...base, heads: 4, kvHeads: 4, norm: "rms", position: { kind: "alibi" }, mlp: "swiglu", residual: "pre" },
  moss: { ...base, hidden: 16, norm: "layer", position: { kind: "rope", style: "interleaved", rotaryDim: 4 }, mlp: "gelu", residual: "parallel", bias: true },
  chatglm: { ...base, qkvLayout: "per-head", norm: "layer", position: { kind: "rope", style: "half", glm2d: true }, mlp: "gelu", residual: "glm", prefixMask: true, bias: true, tiedHead: true },
  chatglm2: { ...base, hidden: 16, heads: 4, kvHeads: 2, norm: "rms", position: { kind: "rope", style: "interleaved", rotaryDim: 2 }, mlp: "swiglu", residual: "pre", bias: true },
};

/** Seeded random weights and a batch of tokens: labels shifted by one with ignored (-100) ends. */
export function randomFeeds(model: TinyTransformer, o: TinyTransformerOptions, seed: number): Map<string, Float64Array> {
  const rng = new Random(seed);
  const feeds = new Map<string, Float64Array>();
  for (const p of model.params) {
    const name = p.attrs.name!;
    const isNormWeight = name.includes("norm") && name.endsWith(".weight");
    const n = p.shape.reduce((a, c) => a * c, 1);
    feeds.set(name, Float64Array.from({ length: n }, () => (isNormWeight ? 1 + 0.2 * rng.normal() : 0.5 * rng.normal())));
  }
  const ids = Float64Array.from({ length: o.batch * o.seq }, () => rng.int(o.vocab));
  feeds.set("ids", ids);
  // next-token labels; the last position of each row and some random positions are ignored
  feeds.set("labels", ids.map((_, i) => ((i + 1) % o.seq === 0 || rng.uniform() < 0.15 ? -100 : ids[i + 1])));
  const prefix = Float64Array.from({ length: o.batch }, () => 1 + rng.int(o.seq - 1));
  feeds.set("prefix_len", prefix);
  const glm = o.position.kind === "rope" && o.position.glm2d;
  const positions: number[] = [];
  for (let bi = 0; bi < o.batch; bi++)
    for (let t = 0; t < o.seq; t++) {
      // GLM 2-D positions (models.md §4.2): the prompt index, then the block index after the prompt
      if (glm) positions.push(Math.min(t, prefix[bi] - 1), Math.max(0, t - prefix[bi] + 1));
      else positions.push(t);
    }
  feeds.set("positions", Float64Array.from(positions));
  return feeds;
}
