// Bad tokenizer files come back as SFT52xx diagnostics naming the file, never as exceptions.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { mkdtempSync, readFileSync, writeFileSync, copyFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Result } from "../../compiler/diagnostics.ts";
import { decodeMessage, int32Of } from "../../runtime/tokenizer/protobuf.ts";
import { SentencePiece } from "../../runtime/tokenizer/sentencepiece.ts";
import { loadTokenizer, type TokenizerKind } from "../../runtime/tokenizer/tokenizer.ts";
import { fixtureDir } from "./fixtures.ts";
import { bytesField, piece, text, varintField } from "./proto-writer.ts";

const modelBytes = new Uint8Array(readFileSync(join(fixtureDir, "bpe.model")));

function expectCode<T>(result: Result<T>, code: string, mentions: string): void {
  assert.not.ok(result.ok, "expected a failure");
  const d = result.diagnostics[0];
  assert.is(d.code, code, d.message);
  assert.ok(d.message.includes(mentions), `"${d.message}" should mention ${mentions}`);
}

test("protobuf: ten-byte negative varints read back as int32", () => {
  const decoded = decodeMessage(new Uint8Array(varintField(43, -1)));
  assert.ok(decoded.ok);
  if (decoded.ok) assert.is(int32Of(decoded.fields[0]), -1);
});

test("a truncated .model is reported as corrupt wherever it is cut", () => {
  const cuts = Array.from({ length: 200 }, (_, k) => Math.floor((k * modelBytes.length) / 200)).concat([modelBytes.length - 1]);
  for (const cut of cuts) {
    const result = SentencePiece.load(modelBytes.subarray(0, cut), "tokenizer.model");
    assert.not.ok(result.ok, `cut at ${cut} should fail`);
    if (!result.ok) assert.is(result.diagnostics[0].code, "SFT5202", result.diagnostics[0].message);
  }
  console.log(`    ${cuts.length} cut points of a ${modelBytes.length}-byte model, all reported as SFT5202`);
});

test("random bytes, an LFS pointer and an empty file are corrupt models", () => {
  expectCode(SentencePiece.load(new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), "m.model"), "SFT5202", "m.model");
  const lfs = new TextEncoder().encode("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 1000\n");
  expectCode(SentencePiece.load(lfs, "ice_text.model"), "SFT5202", "ice_text.model");
  expectCode(SentencePiece.load(new Uint8Array(0), "empty.model"), "SFT5202", "no pieces");
});

test("model settings sftc cannot honour, and broken ones, are refused by name", () => {
  const pieces = [...piece("<unk>", 2), ...piece("a", 1)];
  const specs = [...bytesField(2, []), ...bytesField(3, [])];
  const brokenMap = new Uint8Array([...pieces, ...bytesField(2, []), ...bytesField(3, [...bytesField(1, text("nmt_nfkc")), ...bytesField(2, [9, 0, 0, 0, 1])])]);
  expectCode(SentencePiece.load(brokenMap, "x.model"), "SFT5202", "character map");
  const wordModel = new Uint8Array([...pieces, ...bytesField(2, varintField(3, 3)), ...bytesField(3, [])]);
  expectCode(SentencePiece.load(wordModel, "x.model"), "SFT5203", "model_type word");
  expectCode(SentencePiece.load(new Uint8Array([...piece("a", 1), ...specs]), "x.model"), "SFT5206", "unknown piece");
  const duplicate = new Uint8Array([...pieces, ...piece("a", 1), ...specs]);
  expectCode(SentencePiece.load(duplicate, "x.model"), "SFT5202", "defined twice");
  const noBytes = new Uint8Array([...pieces, ...bytesField(2, varintField(35, 1)), ...bytesField(3, [])]);
  expectCode(SentencePiece.load(noBytes, "x.model"), "SFT5206", "byte pieces");
});

test("a hand-made model with proto2 defaults (unigram, dummy prefix, whitespace folding) encodes", () => {
  const model = new Uint8Array([...piece("<unk>", 2), ...piece("\u2581a", 1), ...piece("b", 1), ...bytesField(2, []), ...bytesField(3, [])]);
  const sp = SentencePiece.load(model, "x.model");
  assert.ok(sp.ok);
  if (sp.ok) {
    assert.equal(sp.value.encode("  a   b "), [1, 0, 2]);
    assert.is(sp.value.decode([1, 2]), "ab");
  }
});

test("loadTokenizer names the missing or broken file", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sftc-tok-"));
  expectCode(await loadTokenizer(dir, "baichuan7b"), "SFT5201", join(dir, "tokenizer.model"));
  expectCode(await loadTokenizer(dir, "chatglm"), "SFT5201", "ice_text.model");
  expectCode(await loadTokenizer(dir, "moss"), "SFT5201", "vocab.json");
  writeFileSync(join(dir, "tokenizer.model"), modelBytes.subarray(0, 500));
  expectCode(await loadTokenizer(dir, "chatglm2"), "SFT5202", join(dir, "tokenizer.model"));
  expectCode(await loadTokenizer(dir, "gpt3" as TokenizerKind), "SFT5205", "gpt3");

  const bpeDir = join(dir, "moss");
  mkdirSync(bpeDir);
  for (const f of ["vocab.json", "merges.txt", "special_tokens_map.json"]) copyFileSync(join(fixtureDir, "gpt2", f), join(bpeDir, f));
  writeFileSync(join(bpeDir, "added_tokens.json"), '{"<eoh>": 5,');
  expectCode(await loadTokenizer(bpeDir, "moss"), "SFT5204", "added_tokens.json");
  writeFileSync(join(bpeDir, "added_tokens.json"), '{"<eoh>": "five"}');
  expectCode(await loadTokenizer(bpeDir, "moss"), "SFT5204", "<eoh>");
  writeFileSync(join(bpeDir, "added_tokens.json"), "{}");
  expectCode(await loadTokenizer(bpeDir, "moss"), "SFT5206", "<eom>");
});

test("a ChatGLM-6B directory whose model lacks [gMASK] is refused", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sftc-tok-"));
  writeFileSync(join(dir, "ice_text.model"), modelBytes);
  expectCode(await loadTokenizer(dir, "chatglm"), "SFT5206", "[MASK]");
});

test.run();
