// Content hashes of input files, streamed (multi-GB shards never enter the JS heap whole).
// A cache keyed by path, size, inode and change time makes re-verification of unchanged files
// free. The change time (ctime) moves on every write and cannot be set back by tools that
// preserve modification times, so a changed byte is always re-hashed.
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, readFile, rename, stat, writeFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";

export interface FileFingerprint {
  size: number;
  sha256: string;
}

interface CacheEntry extends FileFingerprint {
  ino: number;
  ctimeMs: number;
}

export class HashCache {
  private entries = new Map<string, CacheEntry>();
  private dirty = false;

  private constructor(private readonly path: string | undefined) {}

  /** A cache persisted at `path` (created on save); without a path, in memory only. */
  static async open(path?: string): Promise<HashCache> {
    const cache = new HashCache(path);
    if (!path) return cache;
    try {
      const saved = JSON.parse(await readFile(path, "utf8")) as Record<string, CacheEntry>;
      for (const [file, entry] of Object.entries(saved)) cache.entries.set(file, entry);
    } catch {
      // A missing or unreadable cache is only slower, never wrong.
    }
    return cache;
  }

  async fingerprint(file: string): Promise<FileFingerprint> {
    const path = resolve(file);
    const info = await stat(path);
    const cached = this.entries.get(path);
    if (cached && cached.size === info.size && cached.ino === info.ino && cached.ctimeMs === info.ctimeMs) {
      return { size: cached.size, sha256: cached.sha256 };
    }
    const sha256 = await sha256File(path);
    this.entries.set(path, { size: info.size, sha256, ino: info.ino, ctimeMs: info.ctimeMs });
    this.dirty = true;
    return { size: info.size, sha256 };
  }

  async save(): Promise<void> {
    if (!this.path || !this.dirty) return;
    await mkdir(dirname(this.path), { recursive: true });
    await writeFile(`${this.path}.tmp`, JSON.stringify(Object.fromEntries(this.entries)));
    await rename(`${this.path}.tmp`, this.path);
    this.dirty = false;
  }
}

export function sha256File(path: string): Promise<string> {
  return new Promise((done, failed) => {
    const hash = createHash("sha256");
    createReadStream(path, { highWaterMark: 1 << 20 })
      .on("data", (chunk) => hash.update(chunk))
      .on("error", failed)
      .on("end", () => done(hash.digest("hex")));
  });
}

export function sha256Text(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}
