// Tokenization spread over a few worker threads. Chunks are handed out round-robin and their
// results are returned by promise per chunk, so the caller keeps file order whatever thread
// finishes first. With no workers, chunks are tokenized on the calling thread.
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import { installRoot } from "../install.ts";
import { invariant } from "../../compiler/diagnostics.ts";
import type { Conversation } from "./conversation.ts";
import { tokenizeConversations, type EncoderSpec, type OpenEncoder } from "./tokenize-chunk.ts";
import type { TokenChunk } from "./token-store.ts";
import type { ChunkRequest } from "./tokenize-worker.ts";

// Workers run the TypeScript sources through tsx, also when the main thread runs the bundle
// in dist/ (so the worker's source is found from the install root, not from this module).
const workerModule = pathToFileURL(join(installRoot, "runtime", "data", "tokenize-worker.ts")).href;
const loaderApi = import.meta.resolve("tsx/esm/api");
const bootstrap = `import(${JSON.stringify(loaderApi)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(workerModule)}); });`;

interface Pending {
  done: (chunk: TokenChunk) => void;
  failed: (err: unknown) => void;
}

export class TokenizePool {
  private readonly workers: Worker[];
  private readonly pending = new Map<number, Pending>();
  private nextId = 0;
  // Set once a worker has died: later chunks fail at once instead of waiting forever.
  private broken?: unknown;
  // Terminating workers exit with code 1; that is not a failure.
  private closing = false;

  /** `size` worker threads (0: tokenize on this thread with `local`). */
  constructor(
    spec: EncoderSpec,
    size: number,
    private readonly local: OpenEncoder,
  ) {
    this.workers = Array.from({ length: size }, () => {
      const worker = new Worker(bootstrap, { eval: true, workerData: spec });
      worker.on("message", ({ id, chunk }: { id: number; chunk: TokenChunk }) => {
        const entry = this.pending.get(id);
        invariant(entry, `a worker answered unknown chunk ${id}`);
        this.pending.delete(id);
        entry.done(chunk);
      });
      worker.on("error", (err) => this.failAll(err));
      worker.on("exit", (code) => {
        if (code !== 0) this.failAll(new Error(`a tokenizing worker exited with code ${code}`));
      });
      return worker;
    });
  }

  get size(): number {
    return this.workers.length;
  }

  /** Tokenizes one chunk of conversations; records are numbered from `firstRecord`. */
  tokenize(conversations: Conversation[], firstRecord: number): Promise<TokenChunk> {
    if (this.workers.length === 0) return Promise.resolve(tokenizeConversations(conversations, firstRecord, this.local));
    if (this.broken !== undefined) return Promise.reject(this.broken);
    const id = this.nextId++;
    const request: ChunkRequest = { id, conversations, firstRecord };
    return new Promise((done, failed) => {
      this.pending.set(id, { done, failed });
      this.workers[id % this.workers.length].postMessage(request);
    });
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(this.workers.map((w) => w.terminate()));
  }

  private failAll(err: unknown): void {
    if (this.closing) return;
    this.broken = err;
    for (const entry of this.pending.values()) entry.failed(err);
    this.pending.clear();
  }
}
