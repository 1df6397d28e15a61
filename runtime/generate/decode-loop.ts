// Greedy decoding and sampling, one new token per step, with Hugging Face's stopping rules:
// the family's EOS ids, stop strings, `max_new_tokens` and `max_length` (prompt included).
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
  // Greedy decoding applies the processors only; the warpers belong to sampling.
  const logitsSettings = settings.sample
    ? settings.logits
    : { ...neutralLogits, repetitionPenalty: settings.logits.repetitionPenalty, invalidScoreGuard: settings.logits.invalidScoreGuard };
  const sequence = [...prompt];
  const tokens: number[] = [];
  const eos = new Set(settings.eosTokenIds);
  for (;;) {
    if (tokens.length >= settings.maxNewTokens) return { tokens, stopReason: "max_new_tokens" };
    if (sequence.length >= settings.maxLength) return { tokens, stopReason: "max_length" };
    const scores = processLogits(await step(sequence), sequence, logitsSettings);
    const token = settings.sample ? sampleToken(scores, random) : argmax(scores);
    sequence.push(token);
    tokens.push(token);
    if (onToken(token)) return { tokens, stopReason: "stop_string" };
    if (eos.has(token)) return { tokens, stopReason: "eos" };
  }
}
