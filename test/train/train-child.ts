// Child process of the resume tests: trains the tiny model in `runDir` with the settings given as
// JSON. At step `pauseAt` it prints "paused" and blocks for `pauseMs` (the parent kills or signals
// it then); at the end it prints the outcome as JSON.
import { runTraining } from "../../runtime/train/run-training.ts";
import { tinyBackend, tinyData } from "./support.ts";

const [runDir, settingsJson, pauseAt, pauseMs] = process.argv.slice(2);
const outcome = await runTraining({
  runDir,
  settings: JSON.parse(settingsJson),
  backend: tinyBackend(),
  data: tinyData(),
  resume: true,
  progress: false,
  onProgress: (r) => {
    if (r.kind !== "train" || r.step !== Number(pauseAt)) return;
    process.stdout.write("paused\n"); // synchronous on a pipe
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, Number(pauseMs));
  },
});
process.stdout.write(`${JSON.stringify(outcome)}\n`);
