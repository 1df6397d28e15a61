// Mixing several datasets by weight. The rule:
//   - An epoch has as many examples as all training splits together (N = Σ nᵢ).
//   - Dataset i gets the share wᵢ / Σw of them: qᵢ examples, qᵢ = wᵢ / Σw × N rounded by
//     largest remainder so that Σ qᵢ = N exactly. Datasets are drawn in proportion to their
//     weights, not their sizes: a small dataset with a large weight repeats within an epoch, a
//     large one with a small weight is only partly read per epoch. With one dataset (or
//     weights proportional to sizes) an epoch is exactly one pass.
//   - Each dataset is read as an endless stream: its training examples in a seeded shuffled
//     order (file order with `shuffle = false`), reshuffled with a new seed at every wrap.
//     Epoch e takes items [e·qᵢ, (e+1)·qᵢ) of that stream, so consecutive epochs continue
//     where the previous one stopped and every example is seen before any repeats.
//   - The qᵢ slots of each dataset are interleaved by a seeded shuffle of the slot list.
// Everything is a function of (seed, epoch): no random state has to be carried between
// epochs, which is what makes a resume exact.
import { Random } from "../random.ts";
import { seedFor } from "./split.ts";

export interface MixInput {
  name: string;
  weight: number;
  shuffle: boolean;
  /** Example indices of the training split, in file order. */
  train: Int32Array;
}

/** One example of the mixture: which dataset, which example of its store. */
export interface ExampleRef {
  dataset: number;
  index: number;
}

/** Examples per epoch from each dataset: weights as shares of Σ nᵢ, largest remainder. */
export function epochQuotas(inputs: readonly MixInput[]): number[] {
  const total = inputs.reduce((n, d) => n + d.train.length, 0);
  const live = inputs.map((d) => (d.train.length > 0 ? d.weight : 0));
  const weights = live.reduce((a, b) => a + b, 0);
  if (weights === 0) return inputs.map(() => 0);
  const exact = live.map((w) => (w / weights) * total);
  const quotas = exact.map(Math.floor);
  let left = total - quotas.reduce((a, b) => a + b, 0);
  const byRemainder = exact.map((x, i) => ({ i, r: x - Math.floor(x) })).sort((a, b) => b.r - a.r || a.i - b.i);
  for (const { i } of byRemainder) {
    if (left === 0) break;
    if (live[i] === 0) continue;
    quotas[i]++;
    left--;
  }
  return quotas;
}

// Items [from, from + count) of a dataset's endless stream of examples.
function streamSlice(input: MixInput, seed: number, from: number, count: number): number[] {
  const n = input.train.length;
  const out: number[] = [];
  let cycle = -1;
  let order: Int32Array = input.train;
  for (let k = from; k < from + count; k++) {
    const c = Math.floor(k / n);
    if (c !== cycle) {
      cycle = c;
      order = input.shuffle ? Int32Array.from(new Random(seedFor(seed, input.name, "cycle", c)).shuffle(Array.from(input.train))) : input.train;
    }
    out.push(order[k % n]);
  }
  return out;
}

/** The examples of epoch `epoch`, in the order they are read. */
export function epochExamples(inputs: readonly MixInput[], seed: number, epoch: number): ExampleRef[] {
  const quotas = epochQuotas(inputs);
  const streams = inputs.map((input, d) => streamSlice(input, seed, epoch * quotas[d], quotas[d]));
  const slots = quotas.flatMap((q, d) => Array<number>(q).fill(d));
  if (inputs.some((d) => d.shuffle)) new Random(seedFor(seed, "interleave", epoch)).shuffle(slots);
  const next = inputs.map(() => 0);
  return slots.map((dataset) => ({ dataset, index: streams[dataset][next[dataset]++] }));
}
