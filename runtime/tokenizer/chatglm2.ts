// ChatGLM2-6B's tokenizer around SentencePiece: five specials numbered after the SentencePiece
// vocabulary ([MASK], [gMASK], [sMASK], sop, eop); [gMASK] sop go at the START of a prompt;
// the specials, <s>, </s> and <unk> (also pad) decode to nothing.
import type { SentencePiece } from "./sentencepiece.ts";
import { withoutSpecial, type DecodeOptions, type SpecialIds, type StreamDecoder, type Tokenizer } from "./tokenizer.ts";

const GLM2_SPECIALS = ["[MASK]", "[gMASK]", "[sMASK]", "sop", "eop"];

export class ChatGlm2Tokenizer implements Tokenizer {
  readonly kind = "chatglm2" as const;
  readonly vocabSize: number;
  readonly special: SpecialIds;
  readonly namedSpecial: ReadonlyMap<string, number>;
  /** Ids that decode to nothing: the five specials, <s>, </s> and <unk> (which is also pad). */
  private readonly silent: Set<number>;

  constructor(private readonly sp: SentencePiece) {
    const n = sp.size;
    this.namedSpecial = new Map(GLM2_SPECIALS.map((name, k) => [name, n + k]));
    this.vocabSize = n + GLM2_SPECIALS.length;
    const { bosId, eosId } = sp.model.trainer;
    this.special = { bos: bosId, eos: eosId, pad: sp.vocab.unkId, unk: sp.vocab.unkId };
    this.silent = new Set([...this.namedSpecial.values(), bosId, eosId, sp.vocab.unkId]);
  }

  /**
   * The Hugging Face tokenizer maps each SentencePiece piece through convert_token_to_id, which
   * looks the special names up first: a piece spelled exactly "sop" or "eop" becomes the special.
   */
  encode(text: string): number[] {
    return this.sp.encodeWithPieces(text).map(([piece, id]) => this.namedSpecial.get(piece) ?? id);
  }

  decode(ids: readonly number[], options: DecodeOptions = {}): string {
    return this.sp.decode(this.visible(ids, options));
  }

  pieces(ids: readonly number[]): string[] {
    return ids.map((id) => GLM2_SPECIALS[id - this.sp.size] ?? this.sp.pieces([id])[0]);
  }

  idOf(piece: string): number | undefined {
    return this.namedSpecial.get(piece) ?? this.sp.vocab.find(piece);
  }

  /** build_inputs_with_special_tokens: [gMASK] sop prompt (answer </s>). */
  withSpecialTokens(prompt: readonly number[], answer?: readonly number[]): number[] {
    const head = [this.namedSpecial.get("[gMASK]")!, this.namedSpecial.get("sop")!, ...prompt];
    return answer ? [...head, ...answer, this.special.eos!] : head;
  }

  streamDecoder(options: DecodeOptions = {}): StreamDecoder {
    const inner = this.sp.streamDecoder();
    return options.skipSpecial ? withoutSpecial(inner, this.silent) : { push: (id) => inner.push(this.silent.has(id) ? -1 : id), flush: () => inner.flush() };
  }

  /** convert_id_to_token gives "" for silent ids: an empty piece that still ends a byte run. */
  private visible(ids: readonly number[], options: DecodeOptions): number[] {
    if (options.skipSpecial) return ids.filter((id) => !this.silent.has(id));
    return ids.map((id) => (this.silent.has(id) ? -1 : id));
  }
}
