// Generation over any GenerationModel: greedy search and sampling through the decode loop (a
// batch of prompts together; the backend pads and masks prompts of different lengths), beam
// search through the beam scorer, with Hugging Face's stopping rules (the family's EOS ids,
// `max_new_tokens`, `max_length`) plus stop strings, which the caller detects on the decoded
// text (see text-output.ts) and reports through `onToken`.
import { ok, type Result } from "../../compiler/diagnostics.ts";
import type { Random } from "../random.ts";
import { beamSearch } from "./beam-search.ts";
import { decodeBatch, type StopReason } from "./decode-loop.ts";
import type { LogitsSettings } from "./logits.ts";
import type { GenerationModel, GenerationSession } from "./model.ts";

export type Strategy = "greedy" | "beam" | "top_k" | "top_p" | "sample";

export interface GenerationSettings {
  strategy: Strategy;
  maxNewTokens: number;
  /** Prompt plus generated tokens; Infinity when only `maxNewTokens` limits. */
  maxLength: number;
  eosTokenIds: readonly number[];
  /** Repetition penalty and ChatGLM's guard always; temperature, top-k, top-p when sampling. */
  logits: LogitsSettings;
  numBeams: number;
  lengthPenalty: number;
  earlyStopping: boolean;
  numReturnSequences: number;
}

export interface Generated {
  /** New tokens, prompt excluded; an EOS that ended the sequence is included. */
  tokens: number[];
  stopReason: StopReason;
  /** Beam search: the hypothesis' length-penalized score. */
  score?: number;
}

/** Streaming: `sequence` (0 .. numReturnSequences-1) chose `token`; true stops it (a stop string). */
export type OnToken = (token: number, sequence: number) => boolean | void;

/** Generates `numReturnSequences` continuations of `prompt`; a prompt the model cannot run is an error. */
export async function generate(model: GenerationModel, prompt: readonly number[], settings: GenerationSettings, random: Random, onToken: OnToken = () => {}): Promise<Result<Generated[]>> {
  const out = await generateBatch(model, [prompt], settings, random, (token, _, sequence) => onToken(token, sequence));
  return out.ok ? ok(out.value[0]) : out;
}

/**
 * Generates for several prompts: greedy search and sampling run them as one batch (each prompt
 * repeated `numReturnSequences` times, as `generate` expands its input), beam search one prompt
 * after another. Result [prompt][sequence].
 */
export async function generateBatch(
  model: GenerationModel,
  prompts: readonly (readonly number[])[],
  settings: GenerationSettings,
  random: Random,
  onToken: (token: number, prompt: number, sequence: number) => boolean | void = () => {},
): Promise<Result<Generated[][]>> {
  for (const prompt of prompts) {
    const checked = model.check(prompt);
    if (!checked.ok) return checked;
  }
  // the model's positions bound max_length like any other limit
  const bounded = { ...settings, maxLength: Math.min(settings.maxLength, model.maxPositions) };
  if (settings.strategy === "beam") {
    const out: Generated[][] = [];
    for (const prompt of prompts) out.push(await beam(model, prompt, bounded));
    return ok(out);
  }
  const n = settings.numReturnSequences;
  const rows = prompts.flatMap((prompt) => Array.from({ length: n }, () => prompt));
  const stepper = new SessionSteps(model);
  try {
    const decodeSettings = { sample: settings.strategy !== "greedy", logits: settings.logits, maxNewTokens: settings.maxNewTokens, maxLength: bounded.maxLength, eosTokenIds: settings.eosTokenIds };
    const decoded = await decodeBatch(rows, (sequences, running) => stepper.decodeStep(sequences, running), decodeSettings, random, (token, row) => onToken(token, Math.floor(row / n), row % n));
    return ok(prompts.map((_, p) => decoded.slice(p * n, (p + 1) * n)));
  } finally {
    stepper.free();
  }
}

async function beam(model: GenerationModel, prompt: readonly number[], settings: GenerationSettings): Promise<Generated[]> {
  const stepper = new SessionSteps(model);
  try {
    const maxLength = Math.min(settings.maxLength, prompt.length + settings.maxNewTokens);
    const hypotheses = await beamSearch(prompt, (sequences) => stepper.beamStep(sequences), (sources) => stepper.reorder(sources), {
      numBeams: settings.numBeams,
      lengthPenalty: settings.lengthPenalty,
      earlyStopping: settings.earlyStopping,
      numReturnSequences: settings.numReturnSequences,
      maxLength,
      eosTokenIds: settings.eosTokenIds,
      logits: { ...settings.logits, temperature: 1, topK: 0, topP: 1 },
    });
    return hypotheses.map(({ tokens, score }) => {
      // A finished hypothesis is stored without its EOS; HF's finalize writes eos_token_id[0]
      // after any hypothesis shorter than max_length. Only a running beam reaches max_length.
      const finished = tokens.length < maxLength;
      const generated = tokens.slice(prompt.length);
      if (finished) generated.push(settings.eosTokenIds[0]);
      const limit: StopReason = maxLength === prompt.length + settings.maxNewTokens ? "max_new_tokens" : "max_length";
      return { tokens: generated, stopReason: finished ? "eos" : limit, score };
    });
  } finally {
    stepper.free();
  }
}

/**
 * Adapts a session to the loops' "logits of these whole sequences" steps: the first call starts
 * the session from the prompts, every later call appends the sequences' last tokens. Beam search
 * asks for `numBeams` copies of its prompt: the prompt runs once and its cache forks.
 */
class SessionSteps {
  private session: GenerationSession | null = null;
  private running: readonly number[] = [];

  constructor(private readonly model: GenerationModel) {}

  /** Decoding: rows missing from `running` since the last step have stopped and leave the session. */
  async decodeStep(sequences: readonly (readonly number[])[], running: readonly number[]): Promise<Float32Array[]> {
    const previous = this.running;
    this.running = running;
    if (!this.session) {
      const { session, logits } = await this.model.start(sequences);
      this.session = session;
      return logits;
    }
    if (running.length !== previous.length) await this.session.reorder(running.map((row) => previous.indexOf(row)));
    return this.session.append(sequences.map((s) => s[s.length - 1]));
  }

  async beamStep(sequences: readonly (readonly number[])[]): Promise<Float32Array[]> {
    if (this.session) return this.session.append(sequences.map((s) => s[s.length - 1]));
    const { session, logits } = await this.model.start([sequences[0]]);
    this.session = session;
    await session.reorder(sequences.map(() => 0));
    return sequences.map(() => Float32Array.from(logits[0]));
  }

  async reorder(sources: readonly number[]): Promise<void> {
    await this.session!.reorder(sources);
  }

  free(): void {
    this.session?.free();
  }
}
