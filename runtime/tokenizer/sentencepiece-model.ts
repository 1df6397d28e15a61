// The parts of SentencePiece's ModelProto (sentencepiece_model.proto) that encoding and decoding
// read, decoded from the `.model` file with the wire-format reader. Absent fields take the
// proto2 defaults the library declares, so a model that omits them behaves as the library does.
import { diag, fail, ok, type Result } from "../../compiler/diagnostics.ts";
import { boolOf, decodeMessage, floatOf, int32Of, stringOf, type ProtoField } from "./protobuf.ts";

export type PieceType = "normal" | "unknown" | "control" | "user_defined" | "unused" | "byte";
export type ModelType = "unigram" | "bpe" | "word" | "char";

export interface Piece {
  piece: string;
  score: number;
  type: PieceType;
}

/** vocabSize and splitDigits only shaped training; encoding follows the pieces the model has. */
export interface TrainerSpec {
  modelType: ModelType;
  vocabSize: number;
  byteFallback: boolean;
  splitDigits: boolean;
  treatWhitespaceAsSuffix: boolean;
  unkId: number;
  bosId: number;
  eosId: number;
  padId: number;
  unkPiece: string;
  bosPiece: string;
  eosPiece: string;
  padPiece: string;
  /** What decoding prints for the unknown piece. */
  unkSurface: string;
}

export interface NormalizerSpec {
  name: string;
  precompiledCharsmap: Uint8Array;
  addDummyPrefix: boolean;
  removeExtraWhitespaces: boolean;
  escapeWhitespaces: boolean;
  normalizationRuleTsv: string;
}

export interface SentencePieceModel {
  pieces: Piece[];
  trainer: TrainerSpec;
  normalizer: NormalizerSpec;
}

const pieceTypes: Record<number, PieceType> = { 1: "normal", 2: "unknown", 3: "control", 4: "user_defined", 5: "unused", 6: "byte" };
const modelTypes: Record<number, ModelType> = { 1: "unigram", 2: "bpe", 3: "word", 4: "char" };

/** Decodes a `.model` file; `file` names it in the diagnostics. */
export function parseSentencePieceModel(bytes: Uint8Array, file: string): Result<SentencePieceModel> {
  const corrupt = (why: string) =>
    fail<SentencePieceModel>(
      diag("SFT5202", `${file} is not a valid SentencePiece model: ${why}`, {
        where: file,
        hint: "the file may be truncated or a Git LFS pointer; download the tokenizer file again",
      }),
    );
  const top = decodeMessage(bytes);
  if (!top.ok) return corrupt(top.error);

  const pieces: Piece[] = [];
  let trainer = defaultTrainer();
  let normalizer = defaultNormalizer();
  for (const field of top.fields) {
    if (field.number === 1) {
      const piece = parsePiece(field);
      if (typeof piece === "string") return corrupt(`piece ${pieces.length}: ${piece}`);
      pieces.push(piece);
    } else if (field.number === 2) {
      const spec = parseTrainer(field);
      if (typeof spec === "string") return corrupt(`trainer_spec: ${spec}`);
      trainer = spec;
    } else if (field.number === 3) {
      const spec = parseNormalizer(field);
      if (typeof spec === "string") return corrupt(`normalizer_spec: ${spec}`);
      normalizer = spec;
    }
  }
  if (pieces.length === 0) return corrupt("it has no pieces");
  // spm_train always writes both specs after the pieces; a file without them was cut short.
  const has = (n: number) => top.fields.some((f) => f.number === n);
  if (!has(2) || !has(3)) return corrupt("trainer_spec or normalizer_spec is missing (truncated file?)");
  return ok({ pieces, trainer, normalizer });
}

function defaultTrainer(): TrainerSpec {
  return {
    modelType: "unigram",
    vocabSize: 8000,
    byteFallback: false,
    splitDigits: false,
    treatWhitespaceAsSuffix: false,
    unkId: 0,
    bosId: 1,
    eosId: 2,
    padId: -1,
    unkPiece: "<unk>",
    bosPiece: "<s>",
    eosPiece: "</s>",
    padPiece: "<pad>",
    unkSurface: " \u2047 ",
  };
}

function defaultNormalizer(): NormalizerSpec {
  return {
    name: "",
    precompiledCharsmap: new Uint8Array(0),
    addDummyPrefix: true,
    removeExtraWhitespaces: true,
    escapeWhitespaces: true,
    normalizationRuleTsv: "",
  };
}

function subFields(field: ProtoField): ProtoField[] | string {
  if (field.wire !== "bytes") return `field ${field.number} is not a message`;
  const decoded = decodeMessage(field.bytes);
  return decoded.ok ? decoded.fields : decoded.error;
}

function parsePiece(field: ProtoField): Piece | string {
  const fields = subFields(field);
  if (typeof fields === "string") return fields;
  const piece: Piece = { piece: "", score: 0, type: "normal" };
  for (const f of fields) {
    if (f.number === 1) {
      const s = stringOf(f);
      if (s === undefined) return "piece text is not UTF-8";
      piece.piece = s;
    } else if (f.number === 2) {
      const score = floatOf(f);
      if (score === undefined) return "score is not a float";
      piece.score = score;
    } else if (f.number === 3) {
      const type = pieceTypes[int32Of(f) ?? -1];
      if (!type) return `unknown piece type ${int32Of(f)}`;
      piece.type = type;
    }
  }
  return piece;
}

function parseTrainer(field: ProtoField): TrainerSpec | string {
  const fields = subFields(field);
  if (typeof fields === "string") return fields;
  const spec = defaultTrainer();
  const ints: Record<number, "vocabSize" | "unkId" | "bosId" | "eosId" | "padId"> = { 4: "vocabSize", 40: "unkId", 41: "bosId", 42: "eosId", 43: "padId" };
  const bools: Record<number, "byteFallback" | "splitDigits" | "treatWhitespaceAsSuffix"> = { 35: "byteFallback", 25: "splitDigits", 24: "treatWhitespaceAsSuffix" };
  const strings: Record<number, "unkPiece" | "bosPiece" | "eosPiece" | "padPiece" | "unkSurface"> = { 45: "unkPiece", 46: "bosPiece", 47: "eosPiece", 48: "padPiece", 44: "unkSurface" };
  for (const f of fields) {
    if (f.number === 3) {
      const type = modelTypes[int32Of(f) ?? -1];
      if (!type) return `unknown model_type ${int32Of(f)}`;
      spec.modelType = type;
    } else if (f.number in ints) {
      const v = int32Of(f);
      if (v === undefined) return `field ${f.number} is not an integer`;
      spec[ints[f.number]] = v;
    } else if (f.number in bools) {
      const v = boolOf(f);
      if (v === undefined) return `field ${f.number} is not a boolean`;
      spec[bools[f.number]] = v;
    } else if (f.number in strings) {
      const v = stringOf(f);
      if (v === undefined) return `field ${f.number} is not a UTF-8 string`;
      spec[strings[f.number]] = v;
    }
  }
  return spec;
}

function parseNormalizer(field: ProtoField): NormalizerSpec | string {
  const fields = subFields(field);
  if (typeof fields === "string") return fields;
  const spec = defaultNormalizer();
  for (const f of fields) {
    if (f.number === 1 || f.number === 6) {
      const v = stringOf(f);
      if (v === undefined) return `field ${f.number} is not a UTF-8 string`;
      if (f.number === 1) spec.name = v;
      else spec.normalizationRuleTsv = v;
    } else if (f.number === 2) {
      if (f.wire !== "bytes") return "precompiled_charsmap is not bytes";
      spec.precompiledCharsmap = f.bytes;
    } else if (f.number === 3 || f.number === 4 || f.number === 5) {
      const v = boolOf(f);
      if (v === undefined) return `field ${f.number} is not a boolean`;
      if (f.number === 3) spec.addDummyPrefix = v;
      else if (f.number === 4) spec.removeExtraWhitespaces = v;
      else spec.escapeWhitespaces = v;
    }
  }
  return spec;
}
