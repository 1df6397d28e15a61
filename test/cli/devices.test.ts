// `sftc devices` and the `--device NAME` flag: the adapters listed are the ones Dawn opens by name,
// with their features and limits; `--device` picks the adapter of generate, chat and score and
// wins over SFT_ADAPTER; a name that matches none is SFT5002 listing the adapters; a check that
// SFT_ATTENTION=scores forces is shown on every adapter. Skips without a GPU adapter.
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { listAdapters, openDevice, type AdapterSummary } from "../../runtime/gpu/device.ts";
import { describeTuning } from "../../cli/commands/devices.ts";
import { sftc } from "./support.ts";

const quickstart = join(import.meta.dirname, "..", "..", "pipelines", "quickstart.sft");
const listed = await listAdapters();

/** Runs `body` with the adapters Dawn finds, or logs a skip when it finds none. */
function withAdapters(body: (adapters: AdapterSummary[]) => Promise<void>): () => Promise<void> {
  return async () => {
    if (!listed.ok) {
      console.log(`    skipped (no GPU): ${listed.diagnostics[0]?.message}`);
      return;
    }
    await body(listed.value);
  };
}

test(
  "devices --json lists each adapter with backend, vendor, features and limits; each opens by its name with those features",
  withAdapters(async () => {
    const run = await sftc(["devices", "--json"]);
    assert.is(run.code, 0, run.err);
    const adapters: AdapterSummary[] = JSON.parse(run.out);
    assert.ok(adapters.length > 0);
    for (const a of adapters) {
      assert.ok(a.name && a.backend, "a name and a backend");
      assert.type(a.vendor, "string");
      assert.ok(a.limits.maxStorageBufferBindingSize > 0 && a.limits.maxComputeInvocationsPerWorkgroup > 0, "key limits");
      const opened = await openDevice({ adapter: a.name });
      assert.ok(opened.ok, `opening '${a.name}'`);
      if (!opened.ok) continue;
      try {
        for (const feature of opened.value.device.features) assert.ok(a.features.includes(feature), `${a.name}: device feature ${feature} is listed`);
        assert.is(opened.value.hasF16, a.features.includes("shader-f16"));
      } finally {
        opened.value.destroy();
      }
    }
  }),
);

test(
  "devices prints one block per adapter: name, backend, vendor, features, limits",
  withAdapters(async (adapters) => {
    const run = await sftc(["devices"]);
    assert.is(run.code, 0, run.err);
    adapters.forEach((a, i) => assert.match(run.out, `[${i}] ${a.name}\n  backend       ${a.backend}\n`));
    assert.match(run.out, /^ {4}maxStorageBufferBindingSize +\d+$/m);
    assert.match(run.out, /^ {2}features +\S/m);
  }),
);

test(
  "--device picks the adapter of generate --gpu and wins over SFT_ADAPTER; a name matching none is SFT5002 listing the adapters",
  withAdapters(async (adapters) => {
    const name = adapters[0].name;
    const args = ["generate", quickstart, "--ids", "2001,2003,912", "--set", "decode.max_new_tokens=2", "--json", "--gpu"];
    const chosen = await sftc([...args, "--device", name], { env: { SFT_ADAPTER: "no-such-gpu" } });
    assert.is(chosen.code, 0, `--device wins over an SFT_ADAPTER that matches nothing: ${chosen.err}`);
    assert.match(chosen.err, `running on the GPU (${name.split(" ")[0]}`);

    const missing = await sftc([...args, "--device", "no-such-gpu"], { env: { SFT_ADAPTER: name } });
    assert.is(missing.code, 1);
    assert.match(missing.err, "SFT5002");
    assert.match(missing.err, "'no-such-gpu'");
    for (const a of adapters) assert.match(missing.err, `'${a.name}' (${a.backend})`);
    assert.not.match(missing.err, /^\s+at /m, "no stack trace");
  }),
);

test(
  "a score-matrix check that SFT_ATTENTION=scores forces is shown for every adapter, with or without subgroup matrices",
  withAdapters(async (adapters) => {
    // the device reads the variables where it opens, in this process
    const saved = { SFT_ATTENTION: process.env.SFT_ATTENTION, SFT_TUNE: process.env.SFT_TUNE };
    Object.assign(process.env, { SFT_ATTENTION: "scores", SFT_TUNE: "off" });
    try {
      const run = await sftc(["devices"]);
      assert.is(run.code, 0, run.err);
      const blocks = run.out.split(/^(?=\[\d+\] )/m);
      assert.is(blocks.length, adapters.length);
      for (const [i, block] of blocks.entries()) assert.match(block, /^ {2}(self-check| {14}) {4}attention scores: (verified |.+ failed \(.+\); commands refuse to run while SFT_ATTENTION=scores \(SFT5011\))/m, `${adapters[i].name}: the check is shown`);
    } finally {
      for (const [name, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
  }),
);

test("generate, chat and score document --device", async () => {
  for (const command of ["generate", "chat", "score"]) {
    const help = await sftc(["help", command]);
    assert.is(help.code, 0, help.err);
    assert.match(help.out, /--device NAME +the GPU adapter to use/);
  }
});

test("a tuning prints its choice and time, the next three with the rest counted, and what failed its check", () => {
  const outcome = {
    job: "matmul tiling",
    chosen: "a",
    source: "measured" as const,
    at: "2026-11-26T00:00:00.000Z",
    problem: "1024x4096 times (4096, 4096)ᵀ, f32",
    timings: ["a", "b", "c", "d", "e"].map((name, i) => ({ name, ms: 0.4 + i / 10 })),
    rejected: [{ name: "f", why: "failed to compile" }],
  };
  assert.equal(describeTuning(outcome), [
    "matmul tiling: a (0.400 ms on 1024x4096 times (4096, 4096)ᵀ, f32; timed at device open)",
    "  next: b 0.500 ms, c 0.600 ms, d 0.700 ms, 1 more; 1 failed their check (f)",
  ]);
  assert.match(describeTuning({ ...outcome, source: "cached", timings: outcome.timings.slice(0, 1), rejected: [] })[0], "; read from the tuning file, timed 2026-11-26T00:00:00.000Z)");
  assert.equal(describeTuning({ ...outcome, timings: outcome.timings.slice(0, 1), rejected: [] })[1], "  next: none");
});

test.run();
