// Where the host time of one GraphExecutor.run() goes: the launches' refreshes, the uniforms'
// repacking, the encoding of the steps into a batch and its submission. Host-side work (fewer
// refreshes, chunked submission, uniform repacking) needs these apart, and a step's wall time
// mixes them with the GPU's. Runs are timed only while their device asks (GpuDevice.hostPhases):
// bench/host-time.ts reports them for a decode step.

/** Host milliseconds of one run's phases, and what it ran. */
export interface RunPhases {
  /** The launches' refreshes from the i32 inputs (0 when none changed since the last run). */
  refreshMs: number;
  /** BoundSteps.update after a refresh: uniforms repacked and written, bind groups of swapped tensors remade (0 without a refresh). */
  updateMs: number;
  /** BoundSteps.record: every step encoded into the batch, with the submissions of its pieces but the last (SUBMIT_EVERY). */
  recordMs: number;
  /** The batch's last flush (encoder finished, submitted); with timestamps, its submit and the wait for the GPU. */
  submitMs: number;
  /** The whole run(): the phases above and what lies between them (the batch's encoder; at a first run, binding the steps). */
  runMs: number;
  /** The schedule's launches, and the dispatches recorded for them. */
  launches: number;
  dispatches: number;
}

type Phase = "refreshMs" | "updateMs" | "recordMs" | "submitMs";

/** Times one run, each phase from the end of the one before, and appends it to `into` when done. */
export class PhaseTimer {
  private readonly start = performance.now();
  private last = this.start;
  private readonly times: Record<Phase, number> = { refreshMs: 0, updateMs: 0, recordMs: 0, submitMs: 0 };

  constructor(private readonly into: RunPhases[]) {}

  /** `phase` ends now: it took the time since the previous phase ended (or the run started, or `skip`). */
  end(phase: Phase): void {
    const now = performance.now();
    this.times[phase] = now - this.last;
    this.last = now;
  }

  /** The time since the previous phase ended belongs to no phase (only to the run's whole). */
  skip(): void {
    this.last = performance.now();
  }

  /** The run ends now. */
  done(counts: Pick<RunPhases, "launches" | "dispatches">): void {
    this.into.push({ ...this.times, runMs: performance.now() - this.start, ...counts });
  }
}
