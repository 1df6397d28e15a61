// Streams a text file line by line with bounded memory, whatever its size (the MOSS SFT file
// is 8.7 GB). Lines are split on the byte 0x0A, which never occurs inside a multi-byte UTF-8
// sequence, so a character split across two chunks is only decoded once its line is whole.
import { isUtf8 } from "node:buffer";
import type { FileHandle } from "node:fs/promises";

/** A position to start (or resume) reading at: a line start and that line's 1-based number. */
export interface LinePosition {
  offset: number;
  line: number;
}

/** One line, without its terminator (`\n` or `\r\n`). */
export interface RawLine {
  /** 1-based line number. */
  line: number;
  /** Byte offset of the line's first byte (after the BOM on line 1). */
  offset: number;
  /** Byte offset just past the line terminator: where a resumed read starts. */
  end: number;
  /** The decoded text; absent when `problem` is set. */
  text?: string;
  problem?: "too-long" | "invalid-utf8";
}

export interface LineReaderOptions {
  start?: LinePosition;
  /** Lines longer than this are reported as `too-long` without being kept in memory. */
  maxLineBytes?: number;
  chunkBytes?: number;
}

export const defaultMaxLineBytes = 16 * 1024 * 1024;
const defaultChunkBytes = 1024 * 1024;
const newline = 0x0a;
const carriageReturn = 0x0d;

/**
 * Reads `handle` in chunks from `start`. Each yielded chunk is valid only until the next one
 * is requested (the buffer is reused): copy what must be kept.
 */
export async function* readChunks(handle: FileHandle, start = 0, chunkBytes = defaultChunkBytes): AsyncGenerator<{ bytes: Buffer; offset: number }> {
  chunkBytes = Math.max(chunkBytes, 4); // a BOM (3 bytes) always fits in the first chunk
  const buffer = Buffer.allocUnsafe(chunkBytes);
  let offset = start;
  for (;;) {
    const { bytesRead } = await handle.read(buffer, 0, chunkBytes, offset);
    if (bytesRead === 0) return;
    yield { bytes: buffer.subarray(0, bytesRead), offset };
    offset += bytesRead;
  }
}

/** True when `bytes` begins with the UTF-8 byte order mark EF BB BF. */
export function startsWithBom(bytes: Uint8Array): boolean {
  return bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf;
}

/** Decodes UTF-8 strictly: undefined for invalid bytes rather than U+FFFD replacements. */
export function decodeUtf8(bytes: Buffer): string | undefined {
  return isUtf8(bytes) ? bytes.toString("utf8") : undefined;
}

/**
 * Yields every line of the file, empty ones included. A UTF-8 BOM at offset 0 is skipped, a
 * trailing `\r` is removed, and a last line without a final newline is still yielded.
 */
export async function* readLines(handle: FileHandle, options: LineReaderOptions = {}): AsyncGenerator<RawLine> {
  const maxLineBytes = options.maxLineBytes ?? defaultMaxLineBytes;
  let line = options.start?.line ?? 1;
  let lineStart = options.start?.offset ?? 0;
  // Bytes of the current line seen in earlier chunks (copied, since chunks are reused).
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let tooLong = false;

  const finish = (tail: Buffer, end: number): RawLine => {
    const total = pendingBytes + tail.length;
    let result: RawLine;
    if (tooLong || total > maxLineBytes) {
      result = { line, offset: lineStart, end, problem: "too-long" };
    } else {
      const bytes = pending.length === 0 ? tail : Buffer.concat([...pending, tail], total);
      const length = bytes.length > 0 && bytes[bytes.length - 1] === carriageReturn ? bytes.length - 1 : bytes.length;
      const text = decodeUtf8(bytes.subarray(0, length));
      result = text === undefined ? { line, offset: lineStart, end, problem: "invalid-utf8" } : { line, offset: lineStart, end, text };
    }
    line++;
    lineStart = end;
    pending = [];
    pendingBytes = 0;
    tooLong = false;
    return result;
  };

  let fileEnd = lineStart;
  for await (const { bytes, offset } of readChunks(handle, lineStart, options.chunkBytes)) {
    let from = 0;
    if (offset === 0 && startsWithBom(bytes)) {
      from = 3;
      lineStart = 3;
    }
    for (;;) {
      const at = bytes.indexOf(newline, from);
      if (at === -1) break;
      yield finish(bytes.subarray(from, at), offset + at + 1);
      from = at + 1;
    }
    const rest = bytes.length - from;
    if (rest > 0 && !tooLong) {
      if (pendingBytes + rest > maxLineBytes) {
        tooLong = true; // keep scanning for the newline, but stop keeping the bytes
        pending = [];
        pendingBytes = 0;
      } else {
        pending.push(Buffer.from(bytes.subarray(from)));
        pendingBytes += rest;
      }
    }
    fileEnd = offset + bytes.length;
  }
  if (pendingBytes > 0 || tooLong) yield finish(Buffer.alloc(0), fileEnd);
}
