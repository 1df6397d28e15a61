// Reads a whole dataset stream, keeping the report even when reading failed.
import type { Conversation } from "../../runtime/data/conversation.ts";
import { readDataset, type DatasetConfig, type ReadOptions } from "../../runtime/data/read-dataset.ts";
import type { DataReport } from "../../runtime/data/report.ts";

export async function readAll(config: DatasetConfig, options: ReadOptions = {}): Promise<{ conversations: Conversation[]; report: DataReport }> {
  const stream = readDataset(config, options);
  const conversations: Conversation[] = [];
  for await (const c of stream) conversations.push(c);
  return { conversations, report: stream.report };
}
