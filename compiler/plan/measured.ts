// The plan against what a runtime actually allocated: the check behind "the compile-time plan is
// within 5% of the measured peak". A runtime that tracks its GPU buffers calls this with the
// bytes it had allocated at its highest point: `sftc run` for the training engine (5%). (The
// executor's plan is held to the byte instead, by test/execute/memory-plan.test.ts.)
import { formatBytes } from "../passes/memory-plan.ts";

export interface PlanComparison {
  plannedBytes: number;
  allocatedBytes: number;
  /** (planned − allocated) / allocated. */
  relativeError: number;
  withinTolerance: boolean;
  summary: string;
}

/** Compares a planned peak with the bytes allocated at the runtime's peak; `tolerance` defaults to 5%; `subject` names what was planned. */
export function comparePlanWithAllocated(plannedBytes: number, allocatedBytes: number, tolerance = 0.05, subject?: string): PlanComparison {
  const relativeError = (plannedBytes - allocatedBytes) / allocatedBytes;
  const withinTolerance = Math.abs(relativeError) <= tolerance;
  const summary = `${subject ? `${subject}: ` : ""}planned ${formatBytes(plannedBytes)}, allocated ${formatBytes(allocatedBytes)}: ${(100 * relativeError).toFixed(2)}% (${withinTolerance ? "within" : "outside"} ${100 * tolerance}%)`;
  return { plannedBytes, allocatedBytes, relativeError, withinTolerance, summary };
}
