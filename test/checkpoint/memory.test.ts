// Streaming a 200 MB shard keeps memory to about one tensor: the loader reads each tensor's
// bytes on demand and never the whole file. The shard is written to a temp dir by PyTorch.
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { openCheckpoint } from "../../runtime/checkpoint/checkpoint.ts";
import { decodeElements } from "../../runtime/checkpoint/dtype.ts";
import { expectOk } from "../support/result.ts";
import { heldBytes } from "../support/memory.ts";
import { hasTorch, PYTHON, reportSkippedWithoutTorch } from "../support/python.ts";

const SHARD_MB = 200;
const TENSOR_BYTES = 1024 * 2048 * 2;

if (!hasTorch()) reportSkippedWithoutTorch(`streaming a ${SHARD_MB} MB torch shard`);
else test(`streaming a ${SHARD_MB} MB shard grows held memory by about one tensor`, async () => {
  const dir = mkdtempSync(join(tmpdir(), "sftc-large-"));
  try {
    const script = join(import.meta.dirname, "..", "..", "spec", "golden", "make_large_shard.py");
    const made = spawnSync(PYTHON, [script, dir, String(SHARD_MB)], { encoding: "utf8" });
    assert.is(made.status, 0, `make_large_shard.py failed: ${made.stderr}`);
    const fileBytes = statSync(join(dir, "pytorch_model.bin")).size;
    assert.ok(fileBytes >= SHARD_MB * 1024 * 1024, `shard is ${fileBytes} bytes`);

    const checkpoint = expectOk(await openCheckpoint(dir));
    const baseline = heldBytes();
    let peak = 0;
    let count = 0;
    for await (const result of checkpoint.stream()) {
      const tensor = expectOk(result);
      const values = decodeElements(tensor.dtype, tensor.data.subarray(0, 2));
      const index = Number(tensor.name.split(".")[1]);
      assert.is(values[0], index / 2, tensor.name);
      assert.is(tensor.data.byteLength, TENSOR_BYTES);
      peak = Math.max(peak, heldBytes() - baseline);
      count++;
    }
    assert.is(count, SHARD_MB / 4);
    console.log(`    ${(fileBytes / 2 ** 20).toFixed(0)} MiB shard: peak held-memory growth ${(peak / 2 ** 20).toFixed(1)} MiB (one tensor is ${TENSOR_BYTES / 2 ** 20} MiB)`);
    assert.ok(peak < 4 * TENSOR_BYTES, `held memory grew by ${peak} bytes`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
