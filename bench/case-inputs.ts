// What one benchmarked kernel case is (its kernel run, FLOP and byte counts, and a check of its
// outputs against the float64 CPU reference of stdlib/kernels) and what the cases of
// matmul-cases.ts and op-cases.ts share: one seeded source of inputs, drawn in the order the
// cases are built whichever file builds them, operands and references cached per shape, the
// rows checked, and the worst relative error over a case's outputs.
import type { GpuDevice } from "../runtime/gpu/device.ts";
import { uploadTensor, type GpuTensor } from "../runtime/gpu/tensor.ts";
import { Random } from "../runtime/random.ts";
import { relativeError } from "../runtime/numeric.ts";
import type { StorageDType } from "../stdlib/kernels/dtype.ts";
import type { KernelRun } from "../runtime/gpu/kernel-probe.ts";
import { quantizeNf4, type Nf4Tensor } from "../stdlib/quant/nf4.ts";
import { pickRows } from "./checked-rows.ts";
import type { BenchShapes } from "./sizes.ts";

/** Relative error allowed for kernels with f32 outputs (inputs rounded to their storage dtype). */
export const F32_TOLERANCE = 1e-5;

/** A kernel's outputs against its float64 reference. */
export interface KernelCheck {
  /** Largest ‖out−ref‖/‖ref‖ over the kernel's outputs. */
  relativeError: number;
  tolerance: number;
  /** Which rows were compared, e.g. "all 128 rows" or "32 of 2048 rows (evenly spaced)". */
  rows: string;
}

/**
 * One kernel ready to run (or a sequence of kernels bound to its tensors by name, timed as one
 * run): its pipeline, tensors, counts and check.
 */
export type Case = CaseProblem & KernelRun;

interface CaseProblem {
  label: string;
  shape: string;
  /** A matmul: (M, N, K). */
  mnk?: [number, number, number];
  /** Compute-bound without being a matmul (attention). */
  compute?: boolean;
  tensors: Record<string, GpuTensor>;
  flops: number;
  bytes: number;
  /** Compares the outputs of the first run (on the fresh inputs) with the reference. */
  verify: () => Promise<KernelCheck>;
}

/** The rows `rows` of a (?, width) row-major array, packed. */
export function gather(values: ArrayLike<number>, rows: readonly number[], width: number): Float64Array {
  const out = new Float64Array(rows.length * width);
  rows.forEach((r, i) => {
    for (let c = 0; c < width; c++) out[i * width + c] = values[r * width + c];
  });
  return out;
}

/** Relative errors of several outputs (pairs of GPU values and reference) reduced to the worst. */
export function worst(pairs: [ArrayLike<number>, ArrayLike<number>][], rows: string): KernelCheck {
  const errors = pairs.map(([out, ref]) => relativeError(out, ref));
  // NaN compares false with everything: keep it visible instead of letting max() hide it
  const relative = errors.some(Number.isNaN) ? NaN : Math.max(...errors);
  return { relativeError: relative, tolerance: F32_TOLERANCE, rows };
}

/** The seeded inputs of the kernel cases, shared by every case of one run. */
export class CaseInputs {
  readonly rng = new Random(1);
  // The matmul cases repeat a few shapes over many kernels: each operand is drawn (and each NF4
  // weight quantized) once per shape, and each float64 reference computed once per operands,
  // rounding and checked rows. At full size drawing, quantizing and the reference take seconds.
  private readonly operands = new Map<string, Float32Array>();
  private readonly nf4Weights = new Map<string, Nf4Tensor>();
  private readonly references = new Map<string, Float64Array>();

  constructor(
    readonly gpu: GpuDevice,
    readonly s: BenchShapes,
  ) {}

  /** A seeded (n, k) weight quantized to NF4, once per shape. */
  nf4Weight(n: number, k: number): Nf4Tensor {
    const key = `${n}x${k}`;
    let quantized = this.nf4Weights.get(key);
    if (!quantized) this.nf4Weights.set(key, (quantized = quantizeNf4(this.rng.normalArray(n * k, 0.05))));
    return quantized;
  }

  /**
   * Seeded N(0, 0.25) values: kept on the host for the reference, uploaded in `dtype`. With
   * `shareAs` (a matmul operand's role, "a" or "b"), drawn on the first use of that role and
   * shape, then shared.
   */
  input(dtype: StorageDType, shape: number[], shareAs?: string): { host: Float32Array; tensor: GpuTensor } {
    const key = shareAs && `${shareAs} ${shape.join("x")}`;
    let host = key ? this.operands.get(key) : undefined;
    if (!host) {
      host = this.rng.normalArray(shape.reduce((a, b) => a * b, 1), 0.5);
      if (key) this.operands.set(key, host);
    }
    return { host, tensor: uploadTensor(this.gpu, dtype, shape, host) };
  }

  /** `compute()`, once per `key`. */
  reference(key: string, compute: () => Float64Array): Float64Array {
    let ref = this.references.get(key);
    if (!ref) this.references.set(key, (ref = compute()));
    return ref;
  }

  rows(total: number): number[] {
    return pickRows(total, this.s.checkedRows);
  }

  tokenIds(): Int32Array {
    return Int32Array.from({ length: this.s.tokens }, () => this.rng.int(this.s.vocab));
  }
}
