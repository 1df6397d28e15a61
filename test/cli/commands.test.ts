// The sftc commands run in-process through main() with captured output.
import { existsSync, lstatSync, readdirSync, readFileSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { colorEnabled } from "../../cli/io.ts";
import { commands } from "../../cli/registry.ts";
import { goodPipeline, scratch, sftc } from "./support.ts";

const broken = goodPipeline.replace("epochs = 1", "epochs = 1\n    lrr = 3");

test("check: a good pipeline prints ok and exits 0", async () => {
  const s = scratch({ "p.sft": goodPipeline });
  const r = await sftc(["check", "--no-files", join(s.dir, "p.sft")]);
  s.cleanup();
  assert.is(r.code, 0);
  assert.is(r.out, "ok: pipeline `p`\n");
  assert.is(r.err, "");
});

test("check: errors are file:line:col with a code frame and a caret, exit 1", async () => {
  const s = scratch({ "p.sft": broken });
  const file = join(s.dir, "p.sft");
  const r = await sftc(["check", "--no-files", file]);
  s.cleanup();
  assert.is(r.code, 1);
  assert.ok(r.err.startsWith(`${file}:13:5: error SFT2002: unknown key \`lrr\` in \`train\`; did you mean \`lr\`?\n`), r.err);
  assert.match(r.err, / 13 \|     lrr = 3\n    \|     \^~~\n/);
  assert.match(r.err, /1 error, 0 warnings\n$/);
  assert.not.match(r.err, /\u001b\[/, "no colour unless asked");
});

test("check: colour codes only when the Io allows colour", async () => {
  const s = scratch({ "p.sft": broken });
  const r = await sftc(["check", "--no-files", join(s.dir, "p.sft")], { color: true });
  s.cleanup();
  assert.match(r.err, /\u001b\[31merror SFT2002\u001b\[0m/);
});

test("colour: on a terminal only, and NO_COLOR turns it off", () => {
  assert.equal([colorEnabled(true, {}), colorEnabled(false, {}), colorEnabled(undefined, {})], [true, false, false]);
  assert.equal([colorEnabled(true, { NO_COLOR: "1" }), colorEnabled(true, { NO_COLOR: "" })], [false, true]);
});

test("check --json: machine-readable diagnostics on stdout", async () => {
  const s = scratch({ "p.sft": broken });
  const r = await sftc(["check", "--json", "--no-files", join(s.dir, "p.sft")]);
  s.cleanup();
  assert.is(r.code, 1);
  assert.is(r.err, "");
  const json = JSON.parse(r.out);
  assert.is(json.ok, false);
  assert.equal(json.diagnostics.map((d: { code: string; line: number; col: number }) => [d.code, d.line, d.col]), [["SFT2002", 13, 5]]);
});

test("check: referenced files are checked unless --no-files", async () => {
  const s = scratch({ "p.sft": goodPipeline });
  const r = await sftc(["check", join(s.dir, "p.sft")]);
  s.cleanup();
  assert.is(r.code, 1);
  assert.match(r.err, /SFT2015/);
  assert.match(r.err, /pass --no-files/);
});

test("check: several files at once, one summary for all", async () => {
  const s = scratch({ "a.sft": goodPipeline, "b.sft": goodPipeline.replace("pipeline p", "pipeline q"), "c.sft": broken });
  const good = await sftc(["check", "--no-files", join(s.dir, "a.sft"), join(s.dir, "b.sft")]);
  const mixed = await sftc(["check", "--no-files", join(s.dir, "a.sft"), join(s.dir, "c.sft")]);
  s.cleanup();
  assert.equal([good.code, good.out], [0, "ok: pipeline `p`, pipeline `q`\n"]);
  assert.is(mixed.code, 1);
  assert.equal(mixed.err.match(/\d+ errors?, \d+ warnings?/g), ["1 error, 0 warnings"]);
});

test("check --set and FILE#NAME", async () => {
  const two = `${goodPipeline}\npipeline q extends p {\n}\n`;
  const s = scratch({ "p.sft": two });
  const file = join(s.dir, "p.sft");
  const chosen = await sftc(["check", "--no-files", `${file}#q`, "--set", "train.lr=abc"]);
  const conflict = await sftc(["check", "--no-files", `${file}#q`, "--pipeline", "p"]);
  const none = await sftc(["check", "--no-files", file]);
  s.cleanup();
  assert.is(chosen.code, 1);
  assert.match(chosen.err, /^--set\[1\]:1:10: error SFT3001: `lr` must be a number, not a name \(`abc`\)\n 1 \| train\.lr=abc\n   \|          \^~~\n/);
  assert.is(conflict.code, 2);
  assert.match(conflict.err, /names pipeline `q` but --pipeline names `p`/);
  assert.is(none.code, 1);
  assert.match(none.err, /SFT2012/);
});

test("explain: the resolved pipeline as JSON", async () => {
  const s = scratch({ "p.sft": goodPipeline });
  const r = await sftc(["explain", "--no-files", join(s.dir, "p.sft"), "--set", "train.lr=3e-4"]);
  s.cleanup();
  assert.is(r.code, 0);
  const p = JSON.parse(r.out);
  assert.is(p.name, "p");
  assert.is(p.train.lr, 3e-4);
  assert.is(p.model.path, join(s.dir, "models/chatglm2-6b"));
  assert.is(p.decode.strategy, "top_p");
});

test("explain and run: errors exit 1 and print no result", async () => {
  const s = scratch({ "p.sft": broken });
  const explain = await sftc(["explain", "--no-files", join(s.dir, "p.sft")]);
  const run = await sftc(["run", "--no-files", join(s.dir, "p.sft")]);
  s.cleanup();
  assert.equal([explain.code, explain.out, run.code, run.out], [1, "", 1, ""]);
});

test("run: a clean check whose model and data files are missing is refused naming them, exit 1 (training: test/run)", async () => {
  const s = scratch({ "p.sft": goodPipeline });
  const r = await sftc(["run", "--no-files", join(s.dir, "p.sft")]);
  s.cleanup();
  assert.is(r.code, 1);
  assert.is(r.out, "");
  assert.match(r.err, /SFT5603: cannot read .*data\/belle\.json/);
  assert.match(r.err, /models\/chatglm2-6b/);
});

test("fmt --check lists unformatted files and changes nothing; fmt rewrites atomically", async () => {
  const messy = goodPipeline.replace("    epochs = 1", "        epochs=1");
  const s = scratch({ "a.sft": messy, "b.sft": goodPipeline });
  const check = await sftc(["fmt", "--check", s.dir]);
  assert.is(check.code, 1);
  assert.is(check.out, `${join(s.dir, "a.sft")}\n`);
  assert.is(readFileSync(join(s.dir, "a.sft"), "utf8"), messy, "--check writes nothing");
  const write = await sftc(["fmt", join(s.dir, "a.sft"), join(s.dir, "b.sft")]);
  assert.is(write.code, 0);
  assert.is(readFileSync(join(s.dir, "a.sft"), "utf8"), goodPipeline);
  assert.equal(readdirSync(s.dir).sort(), ["a.sft", "b.sft"], "no temporary file left behind");
  const again = await sftc(["fmt", "--check", s.dir]);
  s.cleanup();
  assert.equal([again.code, again.out], [0, ""], "formatting is idempotent");
});

test("fmt: a file with syntax errors is reported and left untouched", async () => {
  const bad = goodPipeline.replace("epochs = 1", "epochs = = 1");
  const s = scratch({ "bad.sft": bad });
  const r = await sftc(["fmt", join(s.dir, "bad.sft")]);
  const after = readFileSync(join(s.dir, "bad.sft"), "utf8");
  s.cleanup();
  assert.is(r.code, 1);
  assert.match(r.err, /error SFT1002/);
  assert.is(after, bad);
});

test("fmt: a symbolic link stays a link; its target gets the new text", async () => {
  const messy = goodPipeline.replace("    epochs = 1", "        epochs=1");
  const s = scratch({ "real.sft": messy });
  symlinkSync(join(s.dir, "real.sft"), join(s.dir, "link.sft"));
  const r = await sftc(["fmt", join(s.dir, "link.sft")]);
  const isLink = lstatSync(join(s.dir, "link.sft")).isSymbolicLink();
  const text = readFileSync(join(s.dir, "real.sft"), "utf8");
  s.cleanup();
  assert.equal([r.code, isLink, text], [0, true, goodPipeline]);
});

test("fmt: a missing path is an error, not a crash", async () => {
  const r = await sftc(["fmt", "/nonexistent/x.sft"]);
  assert.is(r.code, 1);
  assert.match(r.err, /no such file or directory/);
});

test("help, help COMMAND, --version", async () => {
  const help = await sftc(["help"]);
  assert.is(help.code, 0);
  for (const c of commands) assert.ok(help.out.includes(c.name), c.name);
  const helpCheck = await sftc(["help", "check"]);
  assert.match(helpCheck.out, /usage: sftc check/);
  assert.match(helpCheck.out, /--no-files/);
  const flagHelp = await sftc(["check", "--help"]);
  assert.is(flagHelp.out, helpCheck.out);
  const version = await sftc(["--version"]);
  assert.match(version.out, /^sftc \d+\.\d+\.\d+ \(\.sft language version 1\)\n$/);
});

test("unknown commands and flags: exit 2 with a suggestion", async () => {
  const command = await sftc(["chekc", "x.sft"]);
  assert.equal([command.code, command.err.split("\n")[0]], [2, "sftc: unknown command `chekc`; did you mean `check`?"]);
  const flag = await sftc(["check", "--no-file", "x.sft"]);
  assert.equal([flag.code, flag.err.split("\n")[0]], [2, "sftc check: unknown flag `--no-file`; did you mean `--no-files`?"]);
  const topFlag = await sftc(["--verison"]);
  assert.match(topFlag.err, /unknown flag `--verison`/);
  const missing = await sftc(["check"]);
  assert.equal([missing.code, missing.err.split("\n")[0]], [2, "sftc check: missing the .sft file to read"]);
  const helpUnknown = await sftc(["help", "fmtt"]);
  assert.match(helpUnknown.err, /did you mean `fmt`\?/);
});

test("an internal error prints one line and a report request; the stack only with SFT_DEBUG", async () => {
  commands.push({
    name: "explode",
    summary: "",
    load: async () => ({ name: "explode", summary: "", usage: "", details: "", flags: [], run: async () => { throw new Error("boom"); } }),
  });
  try {
    const quiet = await sftc(["explode"]);
    assert.is(quiet.code, 70);
    assert.ok(quiet.err.startsWith("sftc internal error: boom\n"), quiet.err);
    assert.not.match(quiet.err, /\n\s+at /, "no stack trace");
    const debug = await sftc(["explode"], { env: { SFT_DEBUG: "1" } });
    assert.match(debug.err, /\n\s+at /);
  } finally {
    commands.splice(commands.findIndex((c) => c.name === "explode"), 1);
  }
});

test("check: missing file, directory and binary file are diagnostics", async () => {
  const s = scratch({ "garbage.sft": new Uint8Array([0x73, 0x66, 0x74, 0x00, 0xff, 0xfe, 0x01]) });
  const missing = await sftc(["check", join(s.dir, "nope.sft")]);
  const directory = await sftc(["check", s.dir]);
  const binary = await sftc(["check", join(s.dir, "garbage.sft")]);
  s.cleanup();
  for (const r of [missing, directory, binary]) {
    assert.is(r.code, 1);
    assert.match(r.err, /error SFT2019/);
  }
  assert.ok(!existsSync(s.dir));
});

test.run();
