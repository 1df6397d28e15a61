// Seeded random feeds for the tiny transformer: weights, tokens, labels and positions.
import type { TinyTransformer, TinyTransformerOptions } from "../../compiler/models/tiny-transformer.ts";
import { Random } from "../../runtime/random.ts";

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
