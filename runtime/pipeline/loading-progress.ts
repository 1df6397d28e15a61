// Progress of reading a checkpoint onto the device, on the training bar's sink: a bar redrawn in
// place on a terminal (bytes read of all), a line at each quarter otherwise (logs, CI).
import { formatBytes } from "../../compiler/passes/memory-plan.ts";
import type { ProgressSink } from "../train/progress.ts";

const BAR_WIDTH = 30;
const PLAIN_LINES = 4;

/** A callback for each tensor read (bytes so far, bytes in all), and one to call at the end. */
export function loadingProgress(sink: ProgressSink, what: string): { report: (done: number, total: number) => void; finish: () => void } {
  let drawn = false;
  let linesWritten = 0;
  const report = (done: number, total: number) => {
    const fraction = total > 0 ? done / total : 1;
    const counts = `${formatBytes(done)} / ${formatBytes(total)}`;
    if (sink.isTTY) {
      const filled = Math.round(fraction * BAR_WIDTH);
      sink.write(`\r\x1b[2Kloading ${what} [${"#".repeat(filled)}${"-".repeat(BAR_WIDTH - filled)}] ${counts}`);
      drawn = true;
      return;
    }
    // a line each time another quarter is read: the last one at 100%
    const due = Math.floor(fraction * PLAIN_LINES);
    if (due > linesWritten) {
      linesWritten = due;
      sink.write(`loading ${what}: ${counts} (${Math.round(fraction * 100)}%)\n`);
    }
  };
  return {
    report,
    finish: () => {
      if (drawn) sink.write("\n");
      drawn = false;
    },
  };
}
