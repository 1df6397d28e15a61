// Tokenized datasets on disk, so a rerun does not tokenize again. An entry is keyed by a hash
// of everything its tokens depend on: the dataset file's content (size + sha256), the
// tokenizer files' content, the template, loss scheme, max_length, the reader settings and
// `cacheFormat` (raised whenever tokenization or this layout changes). A changed byte anywhere
// gives another key; stale entries are simply never read again.
//
// An entry is two files: KEY.bin (the token arrays) then KEY.json (counts, the read report,
// array sizes), each written to a temporary name and renamed, the .json last: an entry whose
// .json exists is complete. A missing or unreadable entry is only slower, never an error.
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { HashCache, sha256Text } from "../repo/file-hash.ts";
import type { DataReport } from "./report.ts";
import type { TokenChunk } from "./token-store.ts";

const cacheFormat = 2;

export interface CachedMeta {
  format: number;
  report: DataReport;
  /** Conversations tokenized (after filters and `limit`). */
  conversations: number;
  dropped: number;
  droppedLines: number[];
  examples: number;
  tokens: number;
}

export interface CachedDataset {
  meta: CachedMeta;
  chunk: TokenChunk;
}

export class TokenCache {
  private constructor(
    readonly dir: string,
    private readonly hashes: HashCache,
  ) {}

  /** The cache in `dir` (created on first write); file hashes are remembered in `dir/hashes.json`. */
  static async open(dir: string): Promise<TokenCache> {
    return new TokenCache(dir, await HashCache.open(join(dir, "hashes.json")));
  }

  /** The key of a dataset: its file, the tokenizer files, and the settings that shape its tokens. */
  async key(datasetFile: string, tokenizerFiles: readonly string[], settings: unknown): Promise<string> {
    const dataset = await this.hashes.fingerprint(datasetFile);
    const tokenizer = await Promise.all(tokenizerFiles.map((f) => this.hashes.fingerprint(f)));
    // Unsaved hashes are only recomputed next time.
    await this.hashes.save().catch(() => undefined);
    return sha256Text(JSON.stringify({ cacheFormat, dataset, tokenizer, settings }));
  }

  async read(key: string): Promise<CachedDataset | undefined> {
    try {
      const meta = JSON.parse(await readFile(join(this.dir, `${key}.json`), "utf8")) as CachedMeta;
      if (meta.format !== cacheFormat) return undefined;
      const bytes = await readFile(join(this.dir, `${key}.bin`));
      const { examples: n, tokens } = meta;
      if (bytes.byteLength !== 4 * (tokens + 3 * n) + tokens) return undefined;
      // Copy into fresh aligned buffers: Int32 views need 4-byte aligned offsets.
      const buffer = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
      let at = 0;
      const int32 = (count: number) => {
        const view = new Int32Array(buffer, at, count);
        at += 4 * count;
        return view;
      };
      const ids = int32(tokens);
      const lengths = int32(n);
      const records = int32(n);
      const fullLengths = int32(n);
      const trained = new Uint8Array(buffer, at, tokens);
      return { meta, chunk: { ids, trained, lengths, records, fullLengths, dropped: meta.dropped, droppedLines: meta.droppedLines } };
    } catch {
      return undefined;
    }
  }

  /** Stores an entry; a cache that cannot be written (read-only, full disk) only makes the next run slower. */
  async write(key: string, meta: Pick<CachedMeta, "report" | "conversations">, chunk: TokenChunk): Promise<void> {
    try {
      await this.writeEntry(key, meta, chunk);
    } catch {
      // Nothing to do: the tokens are in memory, and the next run tokenizes again.
    }
  }

  private async writeEntry(key: string, meta: Pick<CachedMeta, "report" | "conversations">, chunk: TokenChunk): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const parts = [chunk.ids, chunk.lengths, chunk.records, chunk.fullLengths, chunk.trained].map((a) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
    const bin = join(this.dir, `${key}.bin`);
    await writeFile(`${bin}.tmp`, parts);
    await rename(`${bin}.tmp`, bin);
    const full: CachedMeta = { format: cacheFormat, ...meta, dropped: chunk.dropped, droppedLines: chunk.droppedLines, examples: chunk.lengths.length, tokens: chunk.ids.length };
    const json = join(this.dir, `${key}.json`);
    await writeFile(`${json}.tmp`, JSON.stringify(full));
    await rename(`${json}.tmp`, json);
  }
}
