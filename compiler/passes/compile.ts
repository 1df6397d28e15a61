// The pass pipeline from an op graph to a memory-planned schedule: simplification and folding,
// common subexpressions, optional gradient checkpointing, concats nested to the parts a kernel
// binds, fusion and scheduling, memory planning.
// The verifier runs after every graph pass. SFT_DEBUG=1 prints the schedule and memory plan to
// stderr; SFT_DEBUG=2 also prints the graph after the graph passes.
import { fail, ok, type Result } from "../diagnostics.ts";
import type { Graph, Node } from "../ir/node.ts";
import { printGraph } from "../ir/print.ts";
import { verifyGraph } from "../ir/verify.ts";
import { checkpoint } from "./checkpoint.ts";
import { nestConcat } from "./concat-parts.ts";
import { formatMemoryPlan, planMemory, type MemoryPlan, type PlanOptions } from "./memory-plan.ts";
import { printSchedule } from "./print-schedule.ts";
import { eliminateCommonSubexpressions, rewriteGraph } from "./rewrite.ts";
import { schedule, type Schedule } from "./schedule.ts";
import { foldRules, simplifyRules } from "./simplify.ts";

export interface CompileOptions extends PlanOptions {
  /** Forward tensors (of the input graph) to store; every other activation the backward needs is recomputed. */
  checkpoints?: readonly Node[];
}

export interface Compiled {
  graph: Graph;
  schedule: Schedule;
  plan: MemoryPlan;
  /** How often each rewrite rule fired. */
  fired: Map<string, number>;
}

export function compileGraph(input: Graph, opts: CompileOptions = {}): Result<Compiled> {
  const simplified = rewriteGraph(input, [...simplifyRules, ...foldRules]);
  const cse = eliminateCommonSubexpressions(simplified.graph);
  let g = cse.graph;
  let problems = verifyGraph(g);
  if (opts.checkpoints && !problems.length) {
    // follow the kept nodes through the rewrites; one that was folded away is no longer a tensor to keep
    const kept = opts.checkpoints.map((n) => cse.map.get(simplified.map.get(n) ?? n)).filter((n): n is Node => n !== undefined);
    g = checkpoint(g, kept);
    problems = verifyGraph(g);
  }
  if (problems.length) return fail(...problems);
  const nested = rewriteGraph(g, [nestConcat]);
  g = nested.graph;
  problems = verifyGraph(g);
  if (problems.length) return fail(...problems);
  const s = schedule(g);
  const plan = planMemory(s, opts);
  const debug = Number(process.env.SFT_DEBUG ?? 0);
  if (debug >= 2) process.stderr.write(printGraph(g));
  if (debug >= 1) process.stderr.write(`${printSchedule(s)}${formatMemoryPlan(plan)}\n`);
  const fired = new Map([...simplified.fired, ...cse.fired, ...nested.fired]);
  return ok({ graph: g, schedule: s, plan, fired });
}
