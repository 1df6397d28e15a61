// Crash safety of training checkpoints: interrupted writes never damage the last good one.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadLatestCheckpoint, saveCheckpoint } from "../../runtime/train/checkpoint-store.ts";
import { expectOk } from "../support/result.ts";

const root = join(import.meta.dirname, "..", "..");

function tensorValues(dir: string): Float32Array {
  const bytes = readFileSync(join(dir, "tensors.safetensors"));
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString("utf8"));
  const [begin, end] = header.w.data_offsets;
  const data = bytes.subarray(8 + headerLength + begin, 8 + headerLength + end);
  return new Float32Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
}

const save = (dir: string, step: number) =>
  saveCheckpoint(dir, { step, dataPosition: { line: step }, rng: { data: step }, scheduler: { step } }, [
    { name: "w", dtype: "F32", shape: [4], bytes: () => new Uint8Array(new Float32Array(4).fill(step).buffer) },
  ]);

test("checkpoints are kept newest-first and pruned to `keep`", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sftc-ckpt-"));
  for (const step of [10, 20, 30]) await save(dir, step);
  assert.equal(readdirSync(dir).sort(), ["latest", "step-00000020", "step-00000030"]);
  const latest = await loadLatestCheckpoint(dir);
  assert.ok(latest.ok && latest.value);
  assert.is(latest.ok && latest.value!.state.step, 30);
  assert.equal(Array.from(tensorValues(latest.ok ? latest.value!.dir : "")), [30, 30, 30, 30]);
});

test("a half-written checkpoint or a damaged newest one falls back to the last complete one", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sftc-ckpt-"));
  await save(dir, 1);
  await save(dir, 2);
  mkdirSync(join(dir, ".step-00000003.partial-99999"));
  writeFileSync(join(dir, ".step-00000003.partial-99999", "tensors.safetensors"), "trunc");
  mkdirSync(join(dir, "step-00000004"));
  writeFileSync(join(dir, "step-00000004", "state.json"), '{"step": 4, "tensorBytes": {"w": 16}}');
  writeFileSync(join(dir, "step-00000004", "tensors.safetensors"), "short");
  writeFileSync(join(dir, "latest"), "step-00000004\n");
  const latest = await loadLatestCheckpoint(dir);
  assert.ok(latest.ok);
  assert.is(latest.ok && latest.value!.state.step, 2);
});

test("no checkpoint directory means a fresh start, not an error", async () => {
  const latest = await loadLatestCheckpoint(join(tmpdir(), "sftc-does-not-exist"));
  assert.ok(latest.ok && latest.value === undefined);
});

test("SIGKILL during checkpoint writes leaves a complete, consistent checkpoint", async () => {
  for (const delayMs of [150, 400]) {
    const dir = mkdtempSync(join(tmpdir(), "sftc-ckpt-kill-"));
    const child = spawn(process.execPath, [join(root, "bin", "run-ts.js"), join(root, "test", "support", "checkpoint-writer-child.ts"), dir], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    await new Promise<void>((resolve) => child.stdout.once("data", () => resolve()));
    await new Promise((r) => setTimeout(r, delayMs));
    child.kill("SIGKILL");
    await new Promise((r) => child.once("exit", r));
    const latest = expectOk(await loadLatestCheckpoint(dir));
    assert.ok(latest, "a checkpoint survives");
    const { state, dir: ckpt } = latest!;
    const values = tensorValues(ckpt);
    assert.is(values.length, 1 << 20);
    assert.ok(values.every((v) => v === state.step), `tensor data belongs to step ${state.step}`);
    assert.equal(state.dataPosition, { line: state.step * 10 });
    console.log(`    killed after ${delayMs} ms: resumed from step ${state.step}`);
  }
});

test.run();
