// SIGKILL in the middle of a run, then `sftc run --resume`: the loss of every step equals an
// uninterrupted run's, bitwise. Ctrl-C (SIGINT) saves a checkpoint, exits 130 with the run
// marked stopped, and resumes the same way. Interrupted runs are child processes (bin/sftc.js);
// the others run in-process.
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

/** Starts the run in a child process and sends `signal` once KILL_AFTER steps are logged; returns the exit code and the steps logged by then. */
async function interruptMidRun(file: string, output: string, signal: NodeJS.Signals): Promise<{ code: number | null; logged: number }> {
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
      child.kill(signal);
      break;
    }
  }
  const code = await exited;
  assert.ok(logged >= KILL_AFTER && logged < 24, `interrupted after ${logged} steps: ${stderr.slice(-2000)}`);
  return { code, logged };
}

/** The losses of an uninterrupted run of SETTINGS. */
async function uninterrupted(): Promise<number[]> {
  const straight = sandbox(MEMORIZE);
  const whole = await sftc(["run", straight.file, ...SETTINGS]);
  assert.is(whole.exit, 0, whole.err);
  const losses = metricsLosses(runDirs(join(straight.dir, "runs/memorize"))[0]);
  assert.is(losses.length, 24);
  return losses;
}

/** Resumes the run under `output` in-process; returns its directory. */
async function resume(file: string, output: string): Promise<string> {
  const resumed = await sftc(["run", file, "--resume", ...SETTINGS]);
  assert.is(resumed.exit, 0, resumed.err);
  const dirs = runDirs(output);
  assert.is(dirs.length, 1, "the resumed run continues in the interrupted run's directory");
  return dirs[0];
}

let expected: number[] = [];

test(
  "SIGKILL mid-run, then --resume: the loss sequence equals an uninterrupted run's, bitwise",
  withGpu(async () => {
    expected = await uninterrupted();
    const killed = sandbox(MEMORIZE);
    const output = join(killed.dir, "runs/memorize");
    const { code, logged } = await interruptMidRun(killed.file, output, "SIGKILL");
    assert.is(code, null, "killed, no exit code");
    const losses = metricsLosses(await resume(killed.file, output));
    console.log(`    killed after ${logged} logged steps; resumed to ${losses.length}`);
    assert.equal(losses, expected);
  }),
);

test(
  "SIGINT saves a checkpoint and stops (exit 130, manifest stopped); --resume gives the uninterrupted losses, bitwise",
  withGpu(async () => {
    if (expected.length === 0) expected = await uninterrupted();
    const stopped = sandbox(MEMORIZE);
    const output = join(stopped.dir, "runs/memorize");
    const { code, logged } = await interruptMidRun(stopped.file, output, "SIGINT");
    assert.is(code, 130);
    const manifest = JSON.parse(readFileSync(join(runDirs(output)[0], "manifest.json"), "utf8")) as { status: string; metrics: { steps: number } };
    assert.is(manifest.status, "stopped");
    assert.ok(manifest.metrics.steps >= logged, `stopped at step ${manifest.metrics.steps}`);
    const losses = metricsLosses(await resume(stopped.file, output));
    console.log(`    stopped at step ${manifest.metrics.steps}; resumed to ${losses.length}`);
    assert.equal(losses, expected);
  }),
);

test.run();
