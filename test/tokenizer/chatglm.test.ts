// ChatGLM-6B's preprocessing (models.md §4.4) and special-token placement, and ChatGLM2's
// specials (§5.4). glm6.model is a small model shaped like ice_text.model (make_fixtures.py);
// its reference ids come from the sentencepiece library on the preprocessed text.
import { test } from "uvu";
import * as assert from "uvu/assert";
import { ChatGlmTokenizer, chatGlmPostprocess, chatGlmPreprocess } from "../../runtime/tokenizer/chatglm.ts";
import { ChatGlm2Tokenizer } from "../../runtime/tokenizer/chatglm2.ts";
import { SentencePiece } from "../../runtime/tokenizer/sentencepiece.ts";
import { checkParity, fixtureDir, loadFixtureModel, readExpected, readStrings } from "./fixtures.ts";
import { bytesField, piece } from "./proto-writer.ts";
import { expectOk } from "../support/result.ts";

const glm6 = expectOk(ChatGlmTokenizer.create(loadFixtureModel("glm6"), `${fixtureDir}/glm6.model`));

test("ChatGLM-6B preprocessing: newline -> <n>, tab -> <|tab|>, runs of 2..80 spaces -> <|blank_N|>", () => {
  assert.is(chatGlmPreprocess("a\nb"), "a<n>b");
  assert.is(chatGlmPreprocess("x\ty\t\tz"), "x<|tab|>y<|tab|><|tab|>z");
  assert.is(chatGlmPreprocess("a b"), "a b", "a single space stays");
  assert.is(chatGlmPreprocess("def main():\n    print('hello world')\t# greeting"), "def main():<n><|blank_4|>print('hello world')<|tab|># greeting");
  // 81 spaces: the longest run first (80), the single space left over stays a space.
  assert.is(chatGlmPreprocess(" ".repeat(81) + "x"), "<|blank_80|> x");
  assert.is(chatGlmPreprocess(" ".repeat(165)), "<|blank_80|><|blank_80|><|blank_5|>");
  assert.is(chatGlmPostprocess("<|blank_80|> x<n><|tab|><|blank_2|>"), " ".repeat(81) + "x\n\t  ");
});

test("ChatGLM-6B encodes and decodes like its tokenizer on every fixture string", () => {
  checkParity("glm6", readStrings(), readExpected("glm6"), (s) => glm6.encode(s), (ids) => glm6.decode(ids));
});

test("ChatGLM-6B puts [gMASK] <sop> at the end of the prompt and <eop> after the answer", () => {
  const gmask = glm6.idOf("[gMASK]")!;
  const { bos: sop, eos: eop } = glm6.special;
  assert.equal([sop, eop], [glm6.idOf("<sop>"), glm6.idOf("<eop>")]);
  const prompt = glm6.encode("你好");
  assert.equal(glm6.withSpecialTokens(prompt), [...prompt, gmask, sop]);
  assert.equal(glm6.withSpecialTokens(prompt, [7, 8]), [...prompt, gmask, sop, 7, 8, eop]);
  assert.is(glm6.special.pad, 3);
  assert.is(glm6.decode([...glm6.encode("a  b"), 3, 3]), "a  b", "pad ids are dropped");
});

test("ChatGLM2 numbers its five specials after the sentencepiece vocabulary", () => {
  const sp = loadFixtureModel("unigram");
  const glm2 = new ChatGlm2Tokenizer(sp);
  const n = sp.size;
  assert.equal(["[MASK]", "[gMASK]", "[sMASK]", "sop", "eop"].map((t) => glm2.idOf(t)), [n, n + 1, n + 2, n + 3, n + 4]);
  assert.is(glm2.vocabSize, n + 5);
  const ids = glm2.encode("你好");
  assert.equal(ids, sp.encode("你好"));
  assert.equal(glm2.withSpecialTokens(ids), [n + 1, n + 3, ...ids]);
  assert.equal(glm2.withSpecialTokens(ids, [9]), [n + 1, n + 3, ...ids, 9, 2]);
  assert.equal(glm2.pieces([n + 1, n + 3]), ["[gMASK]", "sop"]);
  // Specials, <s>, </s> and <unk> decode to nothing, as convert_id_to_token makes them "".
  assert.is(glm2.decode([n + 1, n + 3, 1, ...ids, 0, 2]), "你好");
});

test("ChatGLM2: an empty special between byte pieces still ends the byte run, as DecodePieces does", () => {
  const sp = loadFixtureModel("unigram");
  const glm2 = new ChatGlm2Tokenizer(sp);
  const bytes = [0xe4, 0xbd, 0xa0].map((b) => sp.vocab.byteToId[b]); // 你
  assert.is(glm2.decode(bytes), "你");
  assert.is(glm2.decode([bytes[0], sp.size + 1, bytes[1], bytes[2]]), "\ufffd\ufffd\ufffd");
  assert.is(glm2.decode([bytes[0], sp.size + 1, bytes[1], bytes[2]], { skipSpecial: true }), "你");
});

test("ChatGLM2: a piece spelled exactly like a special name maps to the special, as convert_token_to_id does", () => {
  const model = [piece("<unk>", 2), piece("<s>", 3), piece("</s>", 3), piece("\u2581", 1, -1), piece("a", 1, -1), piece("sop", 1, -1)].flat();
  const sp = expectOk(SentencePiece.load(new Uint8Array([...model, ...bytesField(2, []), ...bytesField(3, [])]), "tokenizer.model"));
  assert.equal(sp.encode("asop"), [3, 4, 5]);
  const glm2 = new ChatGlm2Tokenizer(sp);
  assert.equal(glm2.encode("asop"), [3, 4, 6 + 3]);
});

test.run();
