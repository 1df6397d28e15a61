// Untimed work before anything is timed, long enough for the card to leave its idle clock.
//
// An idle H200 runs at 345 MHz and reaches its 1980 MHz only after about a quarter of a second
// of sustained work: with 20 warm-up dispatches of a 2 ms kernel the first 7 timed ones still
// took 8.4 ms against 1.7 ms for the rest (bench/results/h200-2026-11-26b: samples in bench.json,
// clocks in smi.csv), and a median over such a mix can land on either side. (The copy, timed
// first in each run without a warm-up, read 849, 415 and 850 GB/s in three runs: likely the
// same cause, not shown.) Hence warm-up by time, not by count (bench/sizes.ts: 600 ms at full
// and small size, none for the smoke test).

/** Runs `once` (which submits work and waits for it) until `ms` have passed, at least once. */
export async function warmUp(ms: number, once: () => Promise<void>): Promise<void> {
  const start = performance.now();
  do await once();
  while (performance.now() - start < ms);
}
