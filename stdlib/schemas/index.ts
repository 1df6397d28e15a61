// The registry of `.sft` sections: for each keyword, whether it takes a kind (and which kinds
// exist) and the schema of each. The checker and the generated reference in spec/language.md
// read only this table.
import type { SectionKeyword } from "../../grammar/ast.ts";
import type { Schema } from "./common.ts";
import { datasetSchemas } from "./dataset.ts";
import { decodeSchemas } from "./decode.ts";
import { methodSchemas } from "./method.ts";
import { modelSchemas } from "./model.ts";
import { trainSchema } from "./train.ts";

export interface SectionInfo {
  /** What the kind names, for messages ("model family"); undefined when the section takes none. */
  kindNoun?: string;
  kinds: Record<string, Schema>;
  /** Several sections of this keyword may appear in one pipeline (datasets). */
  repeatable: boolean;
  required: boolean;
  description: string;
}

/** The schema key for a section that takes no kind (`train`). */
export const noKind = "";

export const sections: Record<SectionKeyword, SectionInfo> = {
  model: { kindNoun: "model family", kinds: modelSchemas, repeatable: false, required: true, description: "The network to fine-tune." },
  method: { kindNoun: "fine-tuning method", kinds: methodSchemas, repeatable: false, required: true, description: "Which weights train." },
  dataset: { kindNoun: "dataset format", kinds: datasetSchemas, repeatable: true, required: true, description: "Training data; several datasets mix by weight." },
  train: { kinds: { [noKind]: trainSchema }, repeatable: false, required: true, description: "The optimisation loop." },
  decode: { kindNoun: "decoding strategy", kinds: decodeSchemas, repeatable: false, required: false, description: "Generation after training; defaults to the family's chat settings." },
};
