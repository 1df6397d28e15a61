// The tokenizer interface the rest of sftc uses, and loading one from a Hugging Face style
// model directory. Every problem with the files comes back as an SFT52xx diagnostic naming the file.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { diag, fail, ok, type Diagnostic, type Result } from "../../compiler/diagnostics.ts";
import { ByteLevelBpeTokenizer, type ByteLevelBpeFiles } from "./byte-level-bpe.ts";
import { ChatGlmTokenizer } from "./chatglm.ts";
import { ChatGlm2Tokenizer } from "./chatglm2.ts";
import { SentencePiece } from "./sentencepiece.ts";
import { SentencePieceTokenizer } from "./sentencepiece-tokenizer.ts";

/** Model families, plus the two generic formats. */
export type TokenizerKind = "baichuan7b" | "baichuan13b" | "chatglm" | "chatglm2" | "moss" | "sentencepiece" | "gpt2";

export const tokenizerKinds: readonly TokenizerKind[] = ["baichuan7b", "baichuan13b", "chatglm", "chatglm2", "moss", "sentencepiece", "gpt2"];

export interface SpecialIds {
  bos?: number;
  eos?: number;
  pad?: number;
  unk?: number;
}

export interface DecodeOptions {
  /** Drop bos/eos/pad/unk and the named special tokens before decoding. */
  skipSpecial?: boolean;
}

/** Decodes ids one at a time; never splits a UTF-8 character; outputs + flush() = decode(ids). */
export interface StreamDecoder {
  push(id: number): string;
  flush(): string;
}

export interface Tokenizer {
  readonly kind: TokenizerKind;
  /** Ids this tokenizer knows: 0 .. vocabSize-1 (model embeddings may have more rows). */
  readonly vocabSize: number;
  readonly special: SpecialIds;
  /** Family special tokens by name: "[gMASK]", "<sop>", "<eom>", ... */
  readonly namedSpecial: ReadonlyMap<string, number>;
  /** Text to ids, adding no special tokens. */
  encode(text: string): number[];
  /** Ids to text; ids the tokenizer does not know decode to nothing. */
  decode(ids: readonly number[], options?: DecodeOptions): string;
  /** The vocabulary entry of each id. */
  pieces(ids: readonly number[]): string[];
  idOf(piece: string): number | undefined;
  /** The family's build_inputs_with_special_tokens: where [gMASK], <sop>, eos go around a prompt and answer. */
  withSpecialTokens(prompt: readonly number[], answer?: readonly number[]): number[];
  streamDecoder(options?: DecodeOptions): StreamDecoder;
}

/** A stream decoder that ignores the given ids. */
export function withoutSpecial(inner: StreamDecoder, skip: ReadonlySet<number>): StreamDecoder {
  return { push: (id) => (skip.has(id) ? "" : inner.push(id)), flush: () => inner.flush() };
}

/**
 * Loads the tokenizer of a model directory: `tokenizer.model` (ChatGLM-6B: `ice_text.model`) for
 * the SentencePiece families, `vocab.json` + `merges.txt` (+ `added_tokens.json`,
 * `special_tokens_map.json`, `tokenizer_config.json`) for MOSS / GPT-2.
 */
export async function loadTokenizer(dir: string, kind: TokenizerKind): Promise<Result<Tokenizer>> {
  if (!tokenizerKinds.includes(kind)) {
    return fail(diag("SFT5205", `unknown tokenizer kind "${kind}"`, { hint: `use one of: ${tokenizerKinds.join(", ")}` }));
  }
  if (kind === "moss" || kind === "gpt2") return loadByteLevelBpe(dir, kind);
  const names = kind === "chatglm" ? ["ice_text.model", "tokenizer.model"] : ["tokenizer.model"];
  const file = await readFirst(dir, names);
  if (!file.ok) return file;
  const { path, bytes } = file.value;
  const sp = SentencePiece.load(bytes, path);
  if (!sp.ok) return sp;
  if (kind === "chatglm") return ChatGlmTokenizer.create(sp.value, path);
  if (kind === "chatglm2") return ok(new ChatGlm2Tokenizer(sp.value));
  const { bosId, eosId, padId } = sp.value.model.trainer;
  const inVocab = (id: number) => (id >= 0 && id < sp.value.size ? id : undefined);
  // Baichuan's config.json sets pad_token_id 0 (its sentencepiece model has no pad piece).
  const pad = kind === "sentencepiece" ? inVocab(padId) : (inVocab(padId) ?? 0);
  return ok(new SentencePieceTokenizer(kind, sp.value, { bos: inVocab(bosId), eos: inVocab(eosId), pad, unk: sp.value.vocab.unkId }));
}

async function readFirst(dir: string, names: string[]): Promise<Result<{ path: string; bytes: Uint8Array }>> {
  const tried: string[] = [];
  for (const name of names) {
    const path = join(dir, name);
    tried.push(path);
    try {
      return ok({ path, bytes: new Uint8Array(await readFile(path)) });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") return fail(unreadable(path, err));
    }
  }
  return fail(
    diag("SFT5201", `tokenizer file not found: ${tried.join(" or ")}`, {
      where: tried[0],
      hint: "point the model path at a Hugging Face model directory that contains the tokenizer files",
    }),
  );
}

function unreadable(path: string, err: unknown): Diagnostic {
  return diag("SFT5201", `cannot read ${path}: ${(err as Error).message}`, { where: path });
}

async function loadByteLevelBpe(dir: string, kind: TokenizerKind): Promise<Result<Tokenizer>> {
  const diagnostics: Diagnostic[] = [];
  const vocabFile = await readJson(join(dir, "vocab.json"), true, diagnostics);
  const mergesFile = await readFirst(dir, ["merges.txt"]);
  if (!mergesFile.ok) diagnostics.push(...mergesFile.diagnostics);
  const addedFile = await readJson(join(dir, "added_tokens.json"), false, diagnostics);
  const mapFile = await readJson(join(dir, "special_tokens_map.json"), false, diagnostics);
  const configFile = await readJson(join(dir, "tokenizer_config.json"), false, diagnostics);
  if (diagnostics.length > 0 || !mergesFile.ok) return fail(...diagnostics);

  const vocab = tokenIdMap(vocabFile, join(dir, "vocab.json"), diagnostics);
  const added = tokenIdMap(addedFile ?? {}, join(dir, "added_tokens.json"), diagnostics);
  // Newer tokenizer_config.json files list added tokens as added_tokens_decoder: { id: { content } }.
  const decoderList = isObject(configFile) && isObject(configFile.added_tokens_decoder) ? configFile.added_tokens_decoder : {};
  for (const [id, entry] of Object.entries(decoderList)) {
    const content = tokenContent(entry);
    if (content !== undefined && !vocab.has(content) && /^\d+$/.test(id)) added.set(content, Number(id));
  }
  const merges = parseMerges(new TextDecoder().decode(mergesFile.value.bytes));
  if (diagnostics.length > 0) return fail(...diagnostics);

  const field = (key: string) => tokenContent(isObject(mapFile) ? mapFile[key] : undefined) ?? tokenContent(isObject(configFile) ? configFile[key] : undefined);
  const additionalRaw = (isObject(mapFile) && mapFile.additional_special_tokens) || (isObject(configFile) && configFile.additional_special_tokens) || [];
  const additional = Array.isArray(additionalRaw) ? additionalRaw.map(tokenContent).filter((t): t is string => t !== undefined) : [];
  const files: ByteLevelBpeFiles = {
    vocab,
    merges,
    added,
    special: { bos: field("bos_token"), eos: field("eos_token"), unk: field("unk_token"), pad: field("pad_token"), additional },
  };
  for (const [role, token] of Object.entries(files.special)) {
    if (typeof token === "string" && !vocab.has(token) && !added.has(token)) {
      return fail(diag("SFT5206", `${role} "${token}" of ${dir} is neither in vocab.json nor an added token`, { where: join(dir, "special_tokens_map.json") }));
    }
  }
  return ok(new ByteLevelBpeTokenizer(kind, files));
}

/** merges.txt as the slow tokenizer reads it: drop the first line and the part after the last newline. */
function parseMerges(text: string): [string, string][] {
  const lines = text.split("\n").slice(1, -1);
  return lines.map((line) => line.split(/\s+/).filter((s) => s !== "")).map((parts) => (parts.length === 2 ? [parts[0], parts[1]] : ["", ""]));
}

async function readJson(path: string, required: boolean, diagnostics: Diagnostic[]): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === "ENOENT";
    if (missing && !required) return undefined;
    diagnostics.push(missing ? diag("SFT5201", `tokenizer file not found: ${path}`, { where: path }) : unreadable(path, err));
    return undefined;
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    diagnostics.push(diag("SFT5204", `${path} is not valid JSON: ${(err as Error).message}`, { where: path }));
    return undefined;
  }
}

function tokenIdMap(json: unknown, path: string, diagnostics: Diagnostic[]): Map<string, number> {
  const map = new Map<string, number>();
  if (!isObject(json)) {
    diagnostics.push(diag("SFT5204", `${path} must be a JSON object mapping tokens to ids`, { where: path }));
    return map;
  }
  for (const [token, id] of Object.entries(json)) {
    if (!Number.isInteger(id) || (id as number) < 0) {
      diagnostics.push(diag("SFT5204", `${path}: token ${JSON.stringify(token)} has id ${JSON.stringify(id)}, expected a non-negative integer`, { where: path }));
      return map;
    }
    map.set(token, id as number);
  }
  return map;
}

/** A special token given as a string or as an AddedToken object { content, ... }. */
function tokenContent(value: unknown): string | undefined {
  if (typeof value === "string") return value;
  if (isObject(value) && typeof value.content === "string") return value.content;
  return undefined;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
