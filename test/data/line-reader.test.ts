// The streaming line reader: line numbers, byte offsets, BOM, CRLF, a missing final newline,
// characters split across chunks, over-long lines and resuming at an offset.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { mkdtempSync, writeFileSync } from "node:fs";
import { open } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { readLines, type LineReaderOptions, type RawLine } from "../../runtime/data/line-reader.ts";

const dir = mkdtempSync(join(tmpdir(), "sftc-lines-"));
let fileCount = 0;

function tempFile(bytes: Uint8Array | string): string {
  const path = join(dir, `f${fileCount++}.txt`);
  writeFileSync(path, bytes);
  return path;
}

async function lines(path: string, options: LineReaderOptions = {}): Promise<RawLine[]> {
  const handle = await open(path, "r");
  try {
    const out: RawLine[] = [];
    for await (const line of readLines(handle, options)) out.push(line);
    return out;
  } finally {
    await handle.close();
  }
}

test("line numbers, byte offsets and ends of plain LF lines", async () => {
  const path = tempFile("ab\n\nc\n");
  assert.equal(await lines(path), [
    { line: 1, offset: 0, end: 3, text: "ab" },
    { line: 2, offset: 3, end: 4, text: "" },
    { line: 3, offset: 4, end: 6, text: "c" },
  ]);
});

test("a BOM is skipped, CRLF is removed, the last line without a newline is kept", async () => {
  const path = tempFile(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from("一\r\n二\r\n三")]));
  assert.equal(await lines(path), [
    { line: 1, offset: 3, end: 8, text: "一" },
    { line: 2, offset: 8, end: 13, text: "二" },
    { line: 3, offset: 13, end: 16, text: "三" },
  ]);
});

test("multi-byte characters split across chunk boundaries decode whole, for every chunk size 4..17", async () => {
  // 3-byte CJK, a 4-byte emoji and a 2-byte é, so every chunk size splits some character.
  const text = "第一行：你好😀\r\ncafé 第二行\n\n最后一行没有换行符👋";
  const path = tempFile(text);
  const expected = text.split("\n").map((t) => t.replace(/\r$/, ""));
  for (let chunkBytes = 4; chunkBytes <= 17; chunkBytes++) {
    const got = await lines(path, { chunkBytes });
    assert.equal(got.map((l) => l.text), expected, `chunkBytes ${chunkBytes}`);
    assert.equal(got.map((l) => l.offset), [0, 24, 40, 41], `offsets with chunkBytes ${chunkBytes}`);
  }
});

test("a line longer than maxLineBytes is reported, not kept, and the next line is intact", async () => {
  const long = "长".repeat(2000); // 6000 bytes
  const path = tempFile(`short\n${long}\nafter\n${long}`);
  const got = await lines(path, { maxLineBytes: 1000, chunkBytes: 256 });
  assert.equal(got, [
    { line: 1, offset: 0, end: 6, text: "short" },
    { line: 2, offset: 6, end: 6007, problem: "too-long" },
    { line: 3, offset: 6007, end: 6013, text: "after" },
    { line: 4, offset: 6013, end: 12013, problem: "too-long" },
  ]);
});

test("invalid UTF-8 is a problem on its line, not U+FFFD in the text", async () => {
  const path = tempFile(Buffer.concat([Buffer.from("ok\n"), Buffer.from([0x61, 0xff, 0x62, 0x0a]), Buffer.from("fine\n")]));
  assert.equal(await lines(path), [
    { line: 1, offset: 0, end: 3, text: "ok" },
    { line: 2, offset: 3, end: 7, problem: "invalid-utf8" },
    { line: 3, offset: 7, end: 12, text: "fine" },
  ]);
});

test("resuming at a line's end gives exactly the lines after it", async () => {
  const path = tempFile("\ufeff零\n一\r\n二\n三");
  const all = await lines(path, { chunkBytes: 5 });
  for (const [i, l] of all.entries()) {
    const rest = await lines(path, { start: { offset: l.end, line: l.line + 1 }, chunkBytes: 5 });
    assert.equal(rest, all.slice(i + 1), `resume after line ${l.line}`);
  }
});

test("an empty file has no lines", async () => {
  assert.equal(await lines(tempFile("")), []);
});

test.run();
