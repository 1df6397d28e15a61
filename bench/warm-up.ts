// Untimed work before anything is timed, long enough for the card to leave its idle clock.
//
// An idle H200 runs at 345 MHz and reaches its 1980 MHz only after about a quarter of a second
// of sustained work: with 20 warm-up dispatches of a 2 ms kernel the first 7 timed ones still
// took 8.4 ms against 1.7 ms for the rest (bench/results/h200-2026-11-26b: samples in bench.json,
// clocks in smi.csv), and a median over such a mix can land on either side; the same run's copy
// measured 849 GB/s, the next run's, timed first thing after start-up, 415. Hence warm-up by
// time, not by count.
export const WARM_UP_MS = 600;

/** Runs `once` (which submits work and waits for it) until WARM_UP_MS have passed, at least once. */
export async function warmUp(once: () => Promise<void>): Promise<void> {
  const start = performance.now();
  do await once();
  while (performance.now() - start < WARM_UP_MS);
}
