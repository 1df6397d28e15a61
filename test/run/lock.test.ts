// What `sftc run` refuses before training: drift from sft.lock (the first run writes it; one
// changed byte in a dataset is refused naming the file; --update-lock accepts the change), and a
// memory plan over the device's memory.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { withGpu } from "../kernels/gpu-harness.ts";
import { ROOT, runDirs, sandbox, sftc } from "./support.ts";

const MEMORIZE = join(ROOT, "test/run/fixtures/memorize.sft");
const ONE_STEP = ["--set", "train.max_steps=1"];

test(
  "a dataset changed by one byte is refused naming the file (SFT5602); --update-lock accepts it",
  withGpu(async () => {
    const { dir, file } = sandbox(MEMORIZE);
    const first = await sftc(["run", file, ...ONE_STEP]);
    assert.is(first.exit, 0, first.err);
    assert.match(first.err, /locked memorize\.sft#memorize/);

    const data = join(dir, "data/samples/belle.json");
    const bytes = readFileSync(data);
    bytes[bytes.length - 1] = 0x20; // the final newline becomes a space: still valid JSON lines
    writeFileSync(data, bytes);
    const refused = await sftc(["run", file, ...ONE_STEP]);
    assert.is(refused.exit, 1);
    assert.match(refused.err, /SFT5602/);
    assert.match(refused.err, /dataset data\/samples\/belle\.json/);
    assert.is(runDirs(join(dir, "runs/memorize")).length, 1, "nothing ran");

    const accepted = await sftc(["run", file, "--update-lock", ...ONE_STEP]);
    assert.is(accepted.exit, 0, accepted.err);
    assert.match(accepted.err, /updated memorize\.sft#memorize/);
    assert.is(runDirs(join(dir, "runs/memorize")).length, 2);
    const again = await sftc(["run", file, ...ONE_STEP]);
    assert.is(again.exit, 0, again.err);
  }),
);

test(
  "a memory plan over SFT_DEVICE_MEMORY is refused (SFT3101) before any training",
  withGpu(async () => {
    const { dir, file } = sandbox(MEMORIZE);
    const r = await sftc(["run", file, ...ONE_STEP], { SFT_DEVICE_MEMORY: "1MiB" });
    assert.is(r.exit, 1);
    assert.match(r.err, /SFT3101/);
    assert.match(r.err, /memory plan: peak .* \(device 1\.0 MiB, SFT_DEVICE_MEMORY\)/);
    assert.not.ok(existsSync(join(dir, "runs/memorize")), "no run directory");
  }),
);

test.run();
