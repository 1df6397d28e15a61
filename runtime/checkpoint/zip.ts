// The zip container of torch.save checkpoints, read through its central directory (zip64
// included: published shards exceed 4 GB). torch writes every entry uncompressed ("stored"),
// so an entry's bytes are a plain range of the file. Entry names must stay inside one folder.
import type { BinaryFile } from "./binary-file.ts";
import { fault } from "./fault.ts";

export interface ZipEntry {
  name: string;
  /** Offset of the entry's local header. */
  headerOffset: number;
  size: number;
  compressedSize: number;
  method: number;
  encrypted: boolean;
}

const EOCD = 0x06054b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_EOCD = 0x06064b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;
const EOCD_SIZE = 22;
const MAX_COMMENT = 0xffff;
const U32_MAX = 0xffffffff;

/** Every entry of the archive, after checking that none escapes the archive's folder. */
export async function readZipEntries(file: BinaryFile): Promise<ZipEntry[]> {
  const { count, directoryOffset, directorySize } = await findDirectory(file);
  const directory = await file.read(directoryOffset, directorySize, "the zip central directory");
  const view = new DataView(directory.buffer);
  const entries: ZipEntry[] = [];
  let at = 0;
  for (let i = 0; i < count; i++) {
    if (at + 46 > directory.length || view.getUint32(at, true) !== CENTRAL) corrupt(file, `central directory entry ${i} is damaged`);
    const nameLength = view.getUint16(at + 28, true);
    const extraLength = view.getUint16(at + 30, true);
    const commentLength = view.getUint16(at + 32, true);
    if (at + 46 + nameLength + extraLength > directory.length) corrupt(file, `central directory entry ${i} is cut short`);
    const name = new TextDecoder().decode(directory.subarray(at + 46, at + 46 + nameLength));
    const entry: ZipEntry = {
      name,
      method: view.getUint16(at + 10, true),
      encrypted: (view.getUint16(at + 8, true) & 1) === 1,
      compressedSize: view.getUint32(at + 20, true),
      size: view.getUint32(at + 24, true),
      headerOffset: view.getUint32(at + 42, true),
    };
    applyZip64Extra(entry, directory.subarray(at + 46 + nameLength, at + 46 + nameLength + extraLength), file);
    entries.push(entry);
    at += 46 + nameLength + extraLength + commentLength;
  }
  checkNames(entries, file);
  return entries;
}

/** The file offset where `entry`'s stored bytes begin, after checking they fit in the file. */
export async function entryDataOffset(file: BinaryFile, entry: ZipEntry): Promise<number> {
  if (entry.encrypted || entry.method !== 0) {
    fault("SFT5108", `zip entry ${entry.name} in ${file.path} is ${entry.encrypted ? "encrypted" : `compressed (method ${entry.method})`}; torch checkpoints store entries uncompressed`, file.path, "re-save the checkpoint with torch.save");
  }
  const header = new DataView((await file.read(entry.headerOffset, 30, `the local header of ${entry.name}`)).buffer);
  if (header.getUint32(0, true) !== LOCAL) corrupt(file, `the local header of ${entry.name} is damaged`);
  const start = entry.headerOffset + 30 + header.getUint16(26, true) + header.getUint16(28, true);
  if (start + entry.size > file.size) {
    fault("SFT5111", `${file.path} is truncated: zip entry ${entry.name} needs bytes up to ${start + entry.size} but the file has ${file.size}`, file.path, "download the file again");
  }
  return start;
}

async function findDirectory(file: BinaryFile): Promise<{ count: number; directoryOffset: number; directorySize: number }> {
  if (file.size < EOCD_SIZE) corrupt(file, "the file is too short to be a zip archive");
  const tailLength = Math.min(file.size, EOCD_SIZE + MAX_COMMENT);
  const tailStart = file.size - tailLength;
  const tail = await file.read(tailStart, tailLength, "the end of the zip archive");
  const view = new DataView(tail.buffer);
  let eocd = -1;
  for (let at = tail.length - EOCD_SIZE; at >= 0; at--) {
    if (view.getUint32(at, true) === EOCD) {
      eocd = at;
      break;
    }
  }
  if (eocd < 0) corrupt(file, "no end-of-central-directory record (not a zip archive, or truncated)");
  let count = view.getUint16(eocd + 10, true);
  let directorySize = view.getUint32(eocd + 12, true);
  let directoryOffset = view.getUint32(eocd + 16, true);
  const locator = eocd - 20;
  if (locator >= 0 && view.getUint32(locator, true) === ZIP64_LOCATOR) {
    const recordOffset = readU64(view, locator + 8, file);
    const record = new DataView((await file.read(recordOffset, 56, "the zip64 end-of-central-directory record")).buffer);
    if (record.getUint32(0, true) !== ZIP64_EOCD) corrupt(file, "the zip64 end-of-central-directory record is damaged");
    count = readU64(record, 32, file);
    directorySize = readU64(record, 40, file);
    directoryOffset = readU64(record, 48, file);
  }
  if (directoryOffset + directorySize > file.size) corrupt(file, "the central directory lies beyond the end of the file (truncated download?)");
  return { count, directoryOffset, directorySize };
}

/** Replaces the 0xFFFFFFFF placeholders of a central entry with its zip64 extra field values. */
function applyZip64Extra(entry: ZipEntry, extra: Uint8Array, file: BinaryFile): void {
  const view = new DataView(extra.buffer, extra.byteOffset, extra.byteLength);
  for (let at = 0; at + 4 <= extra.length; ) {
    const id = view.getUint16(at, true);
    const length = view.getUint16(at + 2, true);
    if (id === 0x0001) {
      let field = at + 4;
      const next = (): number => {
        if (field + 8 > at + 4 + length || field + 8 > extra.length) corrupt(file, `the zip64 field of ${entry.name} is too short`);
        const value = readU64(view, field, file);
        field += 8;
        return value;
      };
      if (entry.size === U32_MAX) entry.size = next();
      if (entry.compressedSize === U32_MAX) entry.compressedSize = next();
      if (entry.headerOffset === U32_MAX) entry.headerOffset = next();
      return;
    }
    at += 4 + length;
  }
}

/** Every entry must live under one top folder, with no absolute path and no `..` segment. */
function checkNames(entries: ZipEntry[], file: BinaryFile): void {
  const top = entries[0]?.name.split("/")[0];
  for (const { name } of entries) {
    const segments = name.split(/[/\\]/);
    const escapes =
      name.startsWith("/") || name.startsWith("\\") || /^[A-Za-z]:/.test(name) || segments.some((s) => s === "..") || segments[0] !== top || segments.length < 2;
    if (escapes) {
      fault("SFT5107", `zip entry "${name}" in ${file.path} escapes the archive's folder "${top}/"; refusing to read this archive`, file.path, "only load checkpoints from sources you trust");
    }
  }
}

function readU64(view: DataView, at: number, file: BinaryFile): number {
  const value = view.getBigUint64(at, true);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) corrupt(file, "a zip64 size or offset is out of range");
  return Number(value);
}

function corrupt(file: BinaryFile, why: string): never {
  fault("SFT5106", `${file.path} is not a valid zip archive: ${why}`, file.path, "download the file again; torch checkpoints are zip files written by torch.save");
}
