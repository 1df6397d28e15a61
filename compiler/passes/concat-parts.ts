// A concat of more parts than a kernel can read beside its output becomes a concat of concats, each
// of at most MAX_KERNEL_STORAGE_BUFFERS - 1 parts. A generated kernel reads every buffer of its
// expression, and the scheduler keeps it within the bound by writing a part of that expression to
// a buffer of its own (schedule.ts, step 5); a concat of buffers alone has no such part until it
// is nested. Fused in one kernel, the nested concat computes what the flat one did.
import * as b from "../ir/build.ts";
import type { Node } from "../ir/node.ts";
import type { Rule } from "./rewrite.ts";
import { MAX_KERNEL_STORAGE_BUFFERS } from "./schedule.ts";

const MAX_PARTS = MAX_KERNEL_STORAGE_BUFFERS - 1;

/**
 * concat(p1, ..., pn) with n > MAX_PARTS -> concat(concat(p1..p7), concat(p8..p14), ...), runs of
 * MAX_PARTS in order (a run of one is its part); the outer concat is nested again while it has too many.
 */
export const nestConcat: Rule = {
  name: "nest wide concat",
  apply: (n) => {
    if (n.op !== "concat" || n.inputs.length <= MAX_PARTS) return undefined;
    const runs: (readonly Node[])[] = [];
    for (let i = 0; i < n.inputs.length; i += MAX_PARTS) runs.push(n.inputs.slice(i, i + MAX_PARTS));
    return b.concat(runs.map((run) => (run.length === 1 ? run[0] : b.concat(run, n.attrs.axis!))), n.attrs.axis!);
  },
};
