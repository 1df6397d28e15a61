// Greedy decoding and sampling, one new token per running sequence per step, with Hugging Face's
// stopping rules: the family's EOS ids, stop strings, `max_new_tokens` and `max_length` (prompt
// included). A batch of prompts decodes together; a sequence that stops leaves the batch (the
// caller drops its cache row) while the others go on, so each generates what it would alone.
import type { Random } from "../random.ts";
import { neutralLogits, processLogits, type LogitsSettings } from "./logits.ts";
import { argmax, sampleToken } from "./sampling.ts";

export interface DecodeSettings {
  sample: boolean;
  logits: LogitsSettings;
  maxNewTokens: number;
  /** Prompt plus generated tokens; Infinity when only `maxNewTokens` limits. */
  maxLength: number;
  eosTokenIds: readonly number[];
}

/** Logits of the last position given the whole sequence so far (the caller keeps a KV cache). */
export type DecodeStep = (sequence: readonly number[]) => Promise<Float32Array>;

/**
 * Logits of the last position of each running sequence. `running` lists their rows in the batch,
 * in order; a row missing since the last call has stopped (its cache may be freed).
 */
export type BatchDecodeStep = (sequences: readonly (readonly number[])[], running: readonly number[]) => Promise<Float32Array[]>;

export type StopReason = "eos" | "max_new_tokens" | "max_length" | "stop_string";

export interface Decoded {
  tokens: number[];
  stopReason: StopReason;
}

/**
 * Generates after `prompt`. `onToken` sees every new token as it is chosen (streaming) and may
 * return true to stop (a stop string was completed). The EOS token is included in `tokens`.
 */
export async function decode(
  prompt: readonly number[],
  step: DecodeStep,
  settings: DecodeSettings,
  random: Random,
  onToken: (token: number) => boolean | void = () => {},
): Promise<Decoded> {
  const [out] = await decodeBatch([prompt], async ([sequence]) => [await step(sequence)], settings, random, (token) => onToken(token));
  return out;
}

/** `decode` for several prompts at once; random draws go row by row within each step. */
export async function decodeBatch(
  prompts: readonly (readonly number[])[],
  step: BatchDecodeStep,
  settings: DecodeSettings,
  random: Random,
  onToken: (token: number, row: number) => boolean | void = () => {},
): Promise<Decoded[]> {
  // Greedy decoding applies the processors only; the warpers belong to sampling.
  const logitsSettings = settings.sample
    ? settings.logits
    : { ...neutralLogits, repetitionPenalty: settings.logits.repetitionPenalty, invalidScoreGuard: settings.logits.invalidScoreGuard };
  const sequences = prompts.map((p) => [...p]);
  const out: Decoded[] = prompts.map(() => ({ tokens: [], stopReason: "max_new_tokens" }));
  const eos = new Set(settings.eosTokenIds);
  const limit = (row: number): StopReason | null => {
    if (out[row].tokens.length >= settings.maxNewTokens) return "max_new_tokens";
    if (sequences[row].length >= settings.maxLength) return "max_length";
    return null;
  };
  const stop = (row: number, reason: StopReason) => void (out[row].stopReason = reason);
  let running = prompts.map((_, row) => row).filter((row) => {
    const reason = limit(row);
    if (reason) stop(row, reason);
    return !reason;
  });
  while (running.length > 0) {
    const logits = await step(running.map((row) => sequences[row]), running);
    running = running.filter((row, i) => {
      const scores = processLogits(logits[i], sequences[row], logitsSettings);
      const token = settings.sample ? sampleToken(scores, random) : argmax(scores);
      sequences[row].push(token);
      out[row].tokens.push(token);
      const reason = onToken(token, row) ? "stop_string" : eos.has(token) ? "eos" : limit(row);
      if (reason) stop(row, reason);
      return !reason;
    });
  }
  return out;
}
