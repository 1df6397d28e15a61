// The real executable in child processes: exit codes, no colour when stderr is not a terminal,
// and never a stack trace for bad input. Few runs, in parallel: each one starts Node and the
// TypeScript loader (the in-process tests cover the rest).
import { execFile } from "node:child_process";
import { join, resolve } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { goodPipeline, scratch } from "./support.ts";

const bin = resolve(import.meta.dirname, "../../bin/sftc.js");

function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((done) => {
    execFile(process.execPath, [bin, ...args], (error, out, err) => {
      done({ code: error ? Number(error.code ?? 1) : 0, out, err });
    });
  });
}

const stackLine = /^\s+at .+[(:]\d+/m;

test("exit codes, colours and messages of the executable", async () => {
  const s = scratch({
    "good.sft": goodPipeline,
    "bad.sft": goodPipeline.replace("epochs = 1", "epochs = -1"),
    "garbage.sft": new Uint8Array(Array.from({ length: 256 }, (_, i) => (i * 37) % 256)),
  });
  try {
    const [good, bad, missing, directory, garbage, flag] = await Promise.all([
      run(["check", "--no-files", join(s.dir, "good.sft")]),
      run(["check", "--no-files", join(s.dir, "bad.sft")]),
      run(["check", join(s.dir, "missing.sft")]),
      run(["check", s.dir]),
      run(["check", join(s.dir, "garbage.sft")]),
      run(["check", "--frobnicate", join(s.dir, "good.sft")]),
    ]);
    assert.equal([good.code, good.out], [0, "ok: pipeline `p`\n"]);
    assert.is(bad.code, 1);
    assert.match(bad.err, /bad\.sft:12:14: error SFT3002: `epochs` must be greater than 0, not -1/);
    assert.not.match(bad.err, /\u001b\[/, "stderr is a pipe: no colour");
    assert.match(missing.err, /error SFT2019: cannot read missing\.sft: it does not exist/);
    assert.match(garbage.err, /error SFT2019: .*is not a text file/);
    assert.match(directory.err, /error SFT2019: .*is a directory/);
    for (const r of [missing, directory, garbage]) assert.is(r.code, 1);
    assert.is(flag.code, 2);
    assert.match(flag.err, /unknown flag `--frobnicate`/);
    for (const r of [good, bad, missing, directory, garbage, flag]) {
      assert.not.match(r.err, stackLine, `a stack trace in: ${r.err}`);
      assert.not.match(r.err, /internal error/);
    }
  } finally {
    s.cleanup();
  }
});

test.run();
