// Published shards exceed 4 GB, so their sizes and offsets live in zip64 fields. This test
// re-packs a small torch checkpoint with every size and offset moved to zip64 fields (as a
// writer must for large files) and checks it loads exactly like the original.
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { unzipSync } from "fflate";
import { test } from "uvu";
import * as assert from "uvu/assert";
import { openCheckpoint } from "../../runtime/checkpoint/checkpoint.ts";
import { FIXTURES, assertMatchesManifest, readManifest } from "./support.ts";
import { expectOk } from "../support/result.ts";

const U32 = 0xffffffff;

/** Little-endian record writer. */
class Bytes {
  private parts: number[] = [];
  u16(v: number): this { this.parts.push(v & 0xff, (v >>> 8) & 0xff); return this; }
  u32(v: number): this { return this.u16(v & 0xffff).u16(Math.floor(v / 0x10000)); }
  u64(v: number): this { return this.u32(v % 2 ** 32).u32(Math.floor(v / 2 ** 32)); }
  raw(b: Uint8Array): this { this.parts.push(...b); return this; }
  get length(): number { return this.parts.length; }
  get bytes(): Uint8Array { return new Uint8Array(this.parts); }
}

/** A stored zip whose entries, central directory and end record all use zip64 fields. */
function zip64(entries: Record<string, Uint8Array>): Uint8Array {
  const out = new Bytes();
  const central = new Bytes();
  for (const [name, data] of Object.entries(entries)) {
    const nameBytes = new TextEncoder().encode(name);
    const offset = out.length;
    out.u32(0x04034b50).u16(45).u16(0).u16(0).u32(0).u32(0).u32(U32).u32(U32).u16(nameBytes.length).u16(20).raw(nameBytes);
    out.u16(0x0001).u16(16).u64(data.length).u64(data.length).raw(data);
    central.u32(0x02014b50).u16(45).u16(45).u16(0).u16(0).u32(0).u32(0).u32(U32).u32(U32).u16(nameBytes.length).u16(28).u16(0).u16(0).u16(0).u32(0).u32(U32).raw(nameBytes);
    central.u16(0x0001).u16(24).u64(data.length).u64(data.length).u64(offset);
  }
  const count = Object.keys(entries).length;
  const directoryOffset = out.length;
  out.raw(central.bytes);
  const recordOffset = out.length;
  out.u32(0x06064b50).u64(44).u16(45).u16(45).u32(0).u32(0).u64(count).u64(count).u64(central.length).u64(directoryOffset);
  out.u32(0x07064b50).u32(0).u64(recordOffset).u32(1);
  out.u32(0x06054b50).u16(0).u16(0).u16(0xffff).u16(0xffff).u32(U32).u32(U32).u16(0);
  return out.bytes;
}

test("a zip64 archive (sizes and offsets in zip64 extra fields and end record) loads like the original", async () => {
  const source = join(FIXTURES, "special", "views");
  const dir = mkdtempSync(join(tmpdir(), "sftc-zip64-"));
  writeFileSync(join(dir, "pytorch_model.bin"), zip64(unzipSync(readFileSync(join(source, "pytorch_model.bin")))));
  const checkpoint = expectOk(await openCheckpoint(dir));
  assert.is(await assertMatchesManifest(checkpoint, readManifest(source)), 7);
});

test.run();
