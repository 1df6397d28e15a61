// ChatGLM-6B's tokenizer around SentencePiece (ice_text.model): before encoding, "\n" -> "<n>",
// "\t" -> "<|tab|>" and runs of 80 down to 2 spaces -> "<|blank_N|>" (pieces of the model);
// decoding drops <pad> and undoes the replacements; [gMASK] <sop> go at the END of a prompt.
import { diag, fail, ok, type Result } from "../../compiler/diagnostics.ts";
import type { SentencePiece } from "./sentencepiece.ts";
import type { DecodeOptions, SpecialIds, StreamDecoder, Tokenizer } from "./tokenizer.ts";

const MAX_BLANK = 80;

/** ChatGLM-6B's SPTokenizer._preprocess (linebreaks and whitespaces on). */
export function chatGlmPreprocess(text: string): string {
  let out = text.replaceAll("\n", "<n>").replaceAll("\t", "<|tab|>");
  for (let n = MAX_BLANK; n >= 2; n--) out = out.replaceAll(" ".repeat(n), `<|blank_${n}|>`);
  return out;
}

/** ChatGLM-6B's SPTokenizer.postprocess. */
export function chatGlmPostprocess(text: string): string {
  let out = text.replaceAll("<n>", "\n").replaceAll("<|tab|>", "\t");
  for (let n = 2; n <= MAX_BLANK; n++) out = out.replaceAll(`<|blank_${n}|>`, " ".repeat(n));
  return out;
}

const GLM_PATTERNS = ["<n>", "<|tab|>", ...Array.from({ length: MAX_BLANK - 1 }, (_, k) => `<|blank_${k + 2}|>`)];

export class ChatGlmTokenizer implements Tokenizer {
  readonly kind = "chatglm" as const;
  readonly vocabSize: number;
  readonly special: SpecialIds;
  readonly namedSpecial: ReadonlyMap<string, number>;
  private readonly specialSet: Set<number>;

  private constructor(
    private readonly sp: SentencePiece,
    named: Map<string, number>,
    private readonly pad: number,
  ) {
    this.vocabSize = sp.size;
    this.namedSpecial = named;
    this.special = { bos: named.get("<sop>")!, eos: named.get("<eop>")!, pad, unk: sp.vocab.unkId };
    this.specialSet = new Set([...named.values(), pad, sp.vocab.unkId]);
  }

  /** Checks that ice_text.model has the pieces the ChatGLM-6B code refers to. */
  static create(sp: SentencePiece, file: string): Result<ChatGlmTokenizer> {
    const named = new Map<string, number>();
    for (const piece of ["[MASK]", "[gMASK]", "[sMASK]", "<sop>", "<eop>", "<pad>", "<n>", "<|tab|>"]) {
      const id = sp.vocab.find(piece);
      if (id === undefined) return fail(diag("SFT5206", `${file}: ChatGLM-6B tokenizer has no piece "${piece}"`, { where: file, hint: "is this ChatGLM-6B's ice_text.model?" }));
      named.set(piece, id);
    }
    const pad = named.get("<pad>")!;
    for (const piece of ["<pad>", "<n>", "<|tab|>"]) named.delete(piece);
    return ok(new ChatGlmTokenizer(sp, named, pad));
  }

  encode(text: string): number[] {
    return this.sp.encode(chatGlmPreprocess(text));
  }

  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    return chatGlmPostprocess(this.sp.decode(ids.filter((id) => this.keep(id, options))));
  }

  pieces(ids: readonly number[]): string[] {
    return this.sp.pieces(ids);
  }

  idOf(piece: string): number | undefined {
    return this.sp.vocab.find(piece);
  }

  /** build_inputs_with_special_tokens: prompt [gMASK] <sop> (answer <eop>). */
  withSpecialTokens(prompt: readonly number[], answer?: readonly number[]): number[] {
    const head = [...prompt, this.namedSpecial.get("[gMASK]")!, this.special.bos!];
    return answer ? [...head, ...answer, this.special.eos!] : head;
  }

  streamDecoder(options: DecodeOptions = {}): StreamDecoder {
    const inner = this.sp.streamDecoder();
    let held = "";
    // Text that may be the start of "<n>", "<|tab|>" or "<|blank_N|>" waits for the next piece.
    const release = (text: string, final: boolean): string => {
      const all = held + text;
      const lt = final ? -1 : all.lastIndexOf("<");
      const tail = lt >= 0 ? all.slice(lt) : "";
      const wait = tail !== "" && GLM_PATTERNS.some((p) => p.length > tail.length && p.startsWith(tail));
      held = wait ? tail : "";
      return chatGlmPostprocess(wait ? all.slice(0, lt) : all);
    };
    return {
      push: (id) => (this.keep(id, options) ? release(inner.push(id), false) : ""),
      flush: () => release(inner.flush(), true),
    };
  }

  private keep(id: number, options: DecodeOptions): boolean {
    return id >= 0 && id !== this.pad && !(options.skipSpecial && this.specialSet.has(id));
  }
}
