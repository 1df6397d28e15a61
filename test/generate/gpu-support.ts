// Shared by the GPU generation tests: greedy decoding with neutral logits processing.
import type { GenerationSettings } from "../../runtime/generate/engine.ts";
import { neutralLogits } from "../../runtime/generate/logits.ts";

/** Greedy, `maxNewTokens` tokens, no EOS, no logits processing, one sequence. */
export function greedySettings(maxNewTokens: number): GenerationSettings {
  return {
    strategy: "greedy",
    maxNewTokens,
    maxLength: Infinity,
    eosTokenIds: [],
    logits: neutralLogits,
    numBeams: 1,
    lengthPenalty: 1,
    earlyStopping: false,
    numReturnSequences: 1,
  };
}
