// Memory a process holds, for the tests that bound it while streaming large files.
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

/** Everything the process holds that a loader could fill: JS heap plus ArrayBuffer memory, after a GC. */
export function heldBytes(): number {
  gc();
  const usage = process.memoryUsage();
  return usage.heapUsed + usage.external;
}
