// A tokenizing worker thread (started by tokenize-pool.ts): builds the encoder its spec names,
// then answers each chunk of conversations with its tokenized examples.
import { parentPort, workerData } from "node:worker_threads";
import { invariant } from "../../compiler/diagnostics.ts";
import type { Conversation } from "./conversation.ts";
import { openEncoder, tokenizeConversations, type EncoderSpec } from "./tokenize-chunk.ts";

export interface ChunkRequest {
  id: number;
  conversations: Conversation[];
  firstRecord: number;
}

const port = parentPort;
invariant(port, "tokenize-worker.ts runs only as a worker thread");
// The pool opened the same spec on the main thread first, so a failure here is a bug.
const open = await openEncoder(workerData as EncoderSpec);
invariant(open.ok, `a worker could not open the encoder: ${open.ok ? "" : open.diagnostics.map((d) => d.message).join("; ")}`);
port.on("message", (request: ChunkRequest) => {
  const chunk = tokenizeConversations(request.conversations, request.firstRecord, open.value);
  // The arrays were just allocated by ChunkBuilder, so their buffers are plain ArrayBuffers to move.
  const buffers = [chunk.ids, chunk.trained, chunk.lengths, chunk.records, chunk.fullLengths].map((a) => a.buffer as ArrayBuffer);
  port.postMessage({ id: request.id, chunk }, buffers);
});
