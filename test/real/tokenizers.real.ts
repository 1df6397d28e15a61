// Published token-id vectors (shared/reference/models.md §2.4, §3.4, §4.4, §5.4, taken from
// chatglm.cpp's tests and MOSS's moss_inference.py) checked against the real tokenizer files.
// Not part of `npm test`: it needs the downloaded model directories under $SFT_MODELS_DIR
// (default pipelines/models) and skips, naming the directory, when one is missing.
//   node bin/run-ts.js test/real/tokenizers.real.ts
import { test } from "uvu";
import * as assert from "uvu/assert";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { loadTokenizer, type Tokenizer, type TokenizerKind } from "../../runtime/tokenizer/tokenizer.ts";

const modelsDir = resolve(process.env.SFT_MODELS_DIR ?? "pipelines/models");

interface Vector {
  text: string;
  ids: number[];
  /** The ids include the family's prompt specials ([gMASK] sop / [gMASK] <sop>). */
  withSpecials?: boolean;
}

const BAICHUAN13B_ANSWER = "你好！很高兴和你交流。请问有什么我可以帮助你的吗？";

const suites: { kind: TokenizerKind; dir: string; vectors: Vector[]; check?: (tok: Tokenizer) => void }[] = [
  {
    kind: "chatglm",
    dir: "chatglm-6b",
    vectors: [
      { text: "你好", ids: [5, 74874, 130001, 130004], withSpecials: true },
      {
        text: "[Round 0]\n问：你好\n答：你好👋！我是人工智能助手 ChatGLM-6B，很高兴见到你，欢迎问我任何问题。\n[Round 1]\n问：晚上睡不着应该怎么办\n答：",
        ids: [53, 6945, 5, 8, 42, 4, 64286, 12, 74874, 4, 67342, 12, 74874, 130328, 130247, 130233, 130227, 35, 65806, 68241, 75890, 14132, 5388, 340, 11, 21, 222, 6, 76693, 66877, 63852, 6, 66430, 68747, 102501, 63823, 4, 52, 6945, 5, 9, 42, 4, 64286, 12, 65450, 83400, 64213, 66846, 4, 67342, 12, 130001, 130004],
        withSpecials: true,
      },
      { text: "def main():\n    print('hello world')\t# greeting", ids: [1616, 594, 125936, 4, 130011, 2274, 89, 7283, 398, 125686, 130008, 61, 25672, 130001, 130004], withSpecials: true },
    ],
    check: (tok) => assert.is(tok.vocabSize, 130344),
  },
  {
    kind: "chatglm2",
    dir: "chatglm2-6b",
    vectors: [
      { text: "你好", ids: [64790, 64792, 36474, 54591], withSpecials: true },
      { text: "[Round 1]\n\n问：你好\n\n答：", ids: [64790, 64792, 790, 30951, 517, 30910, 30939, 30996, 13, 13, 54761, 31211, 39701, 13, 13, 55437, 31211], withSpecials: true },
      { text: "def main():\n    print('hello world')\t# greeting", ids: [64790, 64792, 884, 1301, 9427, 13, 296, 4466, 2029, 15616, 30914, 993, 3387, 12, 31010, 30174], withSpecials: true },
    ],
    check: (tok) => assert.equal([tok.vocabSize, tok.idOf("[gMASK]"), tok.idOf("sop")], [64794, 64790, 64792]),
  },
  {
    kind: "baichuan13b",
    dir: "baichuan-13b-chat",
    vectors: [
      { text: "你是谁", ids: [9875, 21797] },
      { text: "你好呀", ids: [9875, 31213, 32889] },
      { text: BAICHUAN13B_ANSWER, ids: [9875, 31213, 74, 17318, 31906, 14822, 5536, 73, 20389, 7713, 31182, 1231, 4090, 2689, 31763, 75] },
      { text: "你叫什么名字？", ids: [9875, 32177, 1534, 10240, 75] },
    ],
    check: (tok) => assert.equal([tok.vocabSize, tok.pieces([195, 196])], [64000, ["<reserved_102>", "<reserved_103>"]]),
  },
  {
    kind: "moss",
    dir: "moss-moon-003-sft",
    vectors: [
      { text: "<|MOSS|>:", ids: [27, 91, 44, 18420, 91, 31175] },
      { text: "<|Commands|>:", ids: [27, 91, 6935, 1746, 91, 31175] },
      { text: "  ", ids: [106058] },
      { text: "\t\t", ids: [106066] },
      { text: "<eoh>", ids: [106067] },
    ],
    check: (tok) => assert.equal([tok.vocabSize, tok.special.eos, tok.special.bos], [106072, 106068, 106028]),
  },
];

// A missing model directory registers no test (a skip is not a pass); it is listed instead.
const missing = suites.filter(({ dir }) => !existsSync(join(modelsDir, dir)));
for (const { dir } of missing) console.log(`skipped: ${join(modelsDir, dir)} is missing (set SFT_MODELS_DIR to the folder holding ${dir})`);
for (const { kind, dir, vectors, check } of suites.filter((s) => !missing.includes(s))) {
  const path = join(modelsDir, dir);
  test(`${kind}: published token ids (${path})`, async () => {
    const loaded = await loadTokenizer(path, kind);
    if (!loaded.ok) assert.unreachable(loaded.diagnostics.map((d) => `${d.code} ${d.message}`).join("; "));
    else {
      const tok = loaded.value;
      check?.(tok);
      for (const { text, ids, withSpecials } of vectors) {
        const encoded = tok.encode(text);
        assert.equal(withSpecials ? tok.withSpecialTokens(encoded) : encoded, ids, JSON.stringify(text));
        assert.is(tok.decode(encoded), text, `decode ${JSON.stringify(text)}`);
      }
      console.log(`    ${kind}: ${vectors.length} vectors match`);
    }
  });
}

test.run();
