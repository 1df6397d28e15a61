// `sftc run --device NAME`: trains on the adapter named (over SFT_ADAPTER); a name matching no
// adapter lists the adapters (SFT5002); --device with --cpu is a usage mistake.
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { listAdapters } from "../../runtime/gpu/device.ts";
import { withGpu } from "../kernels/gpu-harness.ts";
import { QUICKSTART, runDirs, sandbox, sftc } from "./support.ts";

const short = ["--set", "train.max_steps=2", "--set", "train.eval_every=2", "--set", "decode.max_new_tokens=2"];

test(
  "--device names the adapter to train on, and wins over SFT_ADAPTER",
  withGpu(async () => {
    const adapters = await listAdapters();
    assert.ok(adapters.ok && adapters.value.length > 0);
    const name = adapters.ok ? adapters.value[0].name : "";
    const { dir, file } = sandbox(QUICKSTART);
    const r = await sftc(["run", file, "--device", name, ...short], { SFT_ADAPTER: "no-such-adapter" });
    assert.is(r.exit, 0, r.err);
    assert.is(runDirs(join(dir, "runs/quickstart")).length, 1);
  }),
);

test("--device naming no adapter is SFT5002 listing the adapters; with --cpu it is a usage error", async () => {
  const { file } = sandbox(QUICKSTART);
  const missing = await sftc(["run", file, "--device", "no-such-adapter", ...short]);
  assert.is(missing.exit, 1);
  assert.match(missing.err, "SFT5002");
  const both = await sftc(["run", file, "--cpu", "--device", "x", ...short]);
  assert.is(both.exit, 2);
});

test.run();
