// One small tokenizer per chat template, for tests that tokenize a conversation the way every
// family does: the bundled tiny SentencePiece model for Baichuan and ChatGLM2, the glm6 fixture
// under ChatGLM's file name (ice_text.model), and the GPT-2 fixture for MOSS.
import { mkdtempSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadTokenizer, type Tokenizer } from "../../runtime/tokenizer/tokenizer.ts";
import type { TemplateName } from "../../stdlib/templates/template.ts";
import { expectOk } from "./result.ts";

const root = join(import.meta.dirname, "..", "..");
const fixtures = join(root, "test", "fixtures", "tokenizers");

/** The test tokenizer of every template's family. */
export async function familyTokenizers(): Promise<Record<TemplateName, Tokenizer>> {
  const tiny = join(root, "pipelines", "models", "tiny");
  const glmDir = mkdtempSync(join(tmpdir(), "sftc-glm-tokenizer-"));
  symlinkSync(join(fixtures, "glm6.model"), join(glmDir, "ice_text.model"));
  return {
    baichuan7b: expectOk(await loadTokenizer(tiny, "baichuan7b")),
    baichuan13b: expectOk(await loadTokenizer(tiny, "baichuan13b")),
    chatglm2: expectOk(await loadTokenizer(tiny, "chatglm2")),
    chatglm: expectOk(await loadTokenizer(glmDir, "chatglm")),
    moss: expectOk(await loadTokenizer(join(fixtures, "gpt2"), "moss")),
  };
}
