// SIGKILL in the middle of a run, then `sftc run --resume`: the loss of every step equals an
// uninterrupted run's, bitwise. The killed run is a child process (bin/sftc.js); the others run
// in-process.
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { withGpu } from "../kernels/gpu-harness.ts";
import { metricsLosses, ROOT, runDirs, sandbox, sftc } from "./support.ts";

const MEMORIZE = join(ROOT, "test/run/fixtures/memorize.sft");
const SETTINGS = ["--set", "train.max_steps=24", "--set", "train.save_every=4"];
const KILL_AFTER = 10; // steps logged before the kill: the step-8 checkpoint exists by then

/** Starts the run in a child process and SIGKILLs it once KILL_AFTER steps are logged; returns the steps logged by then. */
async function killMidRun(file: string, output: string): Promise<number> {
  const child = spawn(process.execPath, [join(ROOT, "bin/sftc.js"), "run", file, ...SETTINGS], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  let logged = 0;
  for (let waited = 0; waited < 120_000 && child.exitCode === null; waited += 25) {
    await new Promise((r) => setTimeout(r, 25));
    const metrics = existsSync(output) ? runDirs(output).map((d) => join(d, "metrics.jsonl")).find(existsSync) : undefined;
    logged = metrics ? readFileSync(metrics, "utf8").split("\n").filter((l) => l.includes('"train"')).length : 0;
    if (logged >= KILL_AFTER) {
      child.kill("SIGKILL");
      break;
    }
  }
  const code = await exited;
  assert.is(code, null, `the child was killed, not finished (exit ${code}): ${stderr.slice(-2000)}`);
  return logged;
}

test(
  "SIGKILL mid-run, then --resume: the loss sequence equals an uninterrupted run's, bitwise",
  withGpu(async () => {
    const straight = sandbox(MEMORIZE);
    const whole = await sftc(["run", straight.file, ...SETTINGS]);
    assert.is(whole.exit, 0, whole.err);
    const expected = metricsLosses(runDirs(join(straight.dir, "runs/memorize"))[0]);
    assert.is(expected.length, 24);

    const killed = sandbox(MEMORIZE);
    const output = join(killed.dir, "runs/memorize");
    const logged = await killMidRun(killed.file, output);
    assert.ok(logged >= KILL_AFTER && logged < 24, `killed after ${logged} steps`);
    const resumed = await sftc(["run", killed.file, "--resume", ...SETTINGS]);
    assert.is(resumed.exit, 0, resumed.err);
    const dirs = runDirs(output);
    assert.is(dirs.length, 1, "the resumed run continues in the killed run's directory");
    const losses = metricsLosses(dirs[0]);
    console.log(`    killed after ${logged} logged steps; resumed to ${losses.length}`);
    assert.equal(losses, expected);
  }),
);

test.run();
