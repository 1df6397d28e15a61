// Child process for the crash test: saves checkpoints of a 4 MiB tensor filled with the step
// number, as fast as it can, until it is killed.
import { saveCheckpoint } from "../../runtime/train/checkpoint-store.ts";

const root = process.argv[2];
for (let step = 1; ; step++) {
  const values = new Float32Array(1 << 20).fill(step);
  await saveCheckpoint(root, { step, dataPosition: { line: step * 10 }, rng: { data: step }, scheduler: { step } }, [
    { name: "w", dtype: "F32", shape: [values.length], bytes: () => new Uint8Array(values.buffer) },
  ]);
  if (step === 1) process.stdout.write("saved\n");
}
