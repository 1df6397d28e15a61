// Reads a whole dataset stream, keeping the report even when reading failed, and checks that
// every record is accounted for: accepted, bad or filtered.
import * as assert from "uvu/assert";
import type { Conversation } from "../../runtime/data/conversation.ts";
import { readDataset, type DatasetConfig, type ReadOptions } from "../../runtime/data/read-dataset.ts";
import type { DataReport } from "../../runtime/data/report.ts";

export async function readAll(config: DatasetConfig, options: ReadOptions = {}): Promise<{ conversations: Conversation[]; report: DataReport }> {
  const stream = readDataset(config, options);
  const conversations: Conversation[] = [];
  for await (const c of stream) conversations.push(c);
  const { report } = stream;
  assert.equal(report.accepted, conversations.length, "every accepted record is yielded");
  assert.equal(report.records, report.accepted + report.bad + report.filtered, "every record is accepted, bad or filtered");
  assert.equal(Object.values(report.badByReason).reduce((a, b) => a + b, 0), report.bad, "bad records counted by reason");
  assert.equal(Object.values(report.filteredByReason).reduce((a, b) => a + b, 0), report.filtered, "filtered records counted by reason");
  return { conversations, report };
}
