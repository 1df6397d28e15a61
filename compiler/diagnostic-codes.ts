// The table of every diagnostic code sftc can report. Codes are stable: never renumber one.
// Ranges: SFT1xxx lexing/parsing, SFT2xxx names and validation, SFT3xxx types, shapes and
// memory, SFT4xxx lowering and fusion, SFT5xxx runtime (device, checkpoints, data, training).
// spec/language.md documents each code; a test checks that the two agree.
import type { Severity } from "./diagnostics.ts";

interface CodeInfo {
  severity: Severity;
  title: string;
}

const table = {
  // ---- SFT1xxx: lexing and parsing ----
  SFT1001: { severity: "error", title: "unexpected character" },
  SFT1002: { severity: "error", title: "syntax error" },
  SFT1003: { severity: "error", title: "unterminated string" },
  SFT1004: { severity: "error", title: "unterminated block comment" },
  SFT1005: { severity: "error", title: "invalid escape sequence in string" },
  SFT1006: { severity: "error", title: "invalid number" },
  SFT1007: { severity: "error", title: "missing or unsupported language version header" },
  SFT1008: { severity: "error", title: "nesting too deep" },

  // ---- SFT2xxx: names and validation (checker) ----
  SFT2001: { severity: "error", title: "unknown section kind" },
  SFT2002: { severity: "error", title: "unknown key" },
  SFT2003: { severity: "error", title: "missing required key" },
  SFT2004: { severity: "error", title: "duplicate key" },
  SFT2005: { severity: "error", title: "duplicate section" },
  SFT2006: { severity: "error", title: "missing required section" },
  SFT2007: { severity: "error", title: "unknown pipeline" },
  SFT2008: { severity: "error", title: "unknown parent pipeline" },
  SFT2009: { severity: "error", title: "extends cycle" },
  SFT2010: { severity: "error", title: "import not found" },
  SFT2011: { severity: "error", title: "import cycle" },
  SFT2012: { severity: "error", title: "several pipelines and none chosen" },
  SFT2013: { severity: "error", title: "no pipeline in file" },
  SFT2014: { severity: "error", title: "duplicate pipeline name" },
  SFT2015: { severity: "error", title: "referenced file or directory not found" },
  SFT2016: { severity: "error", title: "malformed override" },
  SFT2017: { severity: "error", title: "override target not found" },
  SFT2018: { severity: "error", title: "unknown value" },
  SFT2019: { severity: "error", title: "cannot read source file" },
  SFT2020: { severity: "error", title: "conflicting settings" },
  SFT2021: { severity: "warning", title: "setting has no effect" },
  SFT2022: { severity: "error", title: "unknown LoRA target" },
  SFT2023: { severity: "error", title: "unexpected section name" },

  // ---- SFT3xxx: types, shapes and memory ----
  SFT3001: { severity: "error", title: "wrong type" },
  SFT3002: { severity: "error", title: "value out of range" },
  SFT3003: { severity: "error", title: "invalid list" },
  SFT3004: { severity: "error", title: "inconsistent model dimensions" },
  SFT3005: { severity: "error", title: "LoRA rank too large" },
  SFT3006: { severity: "error", title: "sequence longer than the model's positions" },
  SFT3007: { severity: "warning", title: "lossy conversion of the published weights" },
  // SFT31xx: memory plans
  SFT3101: { severity: "error", title: "memory plan exceeds the device memory" },

  // ---- SFT4xxx: lowering and fusion ----
  SFT4001: { severity: "error", title: "model dimensions do not fit together" },
  SFT4002: { severity: "error", title: "missing or mis-sized value for a graph parameter or input" },
  SFT4003: { severity: "error", title: "op graph failed verification" },
  SFT4004: { severity: "error", title: "gradient requested for a tensor that is not a trainable parameter of the loss" },
  SFT4005: { severity: "error", title: "a scheduled kernel has no runtime implementation" },

  // ---- SFT5xxx: runtime ----
  // SFT50xx: device and kernels
  SFT5001: { severity: "error", title: "no WebGPU adapter found" },
  SFT5002: { severity: "error", title: "no WebGPU adapter matches the requested name" },
  SFT5003: { severity: "error", title: "GPU device could not be created" },
  SFT5004: { severity: "error", title: "GPU validation error" },
  SFT5005: { severity: "error", title: "GPU out of memory" },
  SFT5006: { severity: "error", title: "GPU internal error" },
  SFT5007: { severity: "error", title: "GPU device lost" },
  SFT5008: { severity: "error", title: "kernel failed to compile" },
  SFT5009: { severity: "error", title: "GPU feature or limit required by a kernel is missing" },
  SFT5010: { severity: "warning", title: "a fast kernel failed its self-check on this device; the plain kernel is used" },
  SFT5011: { severity: "error", title: "an explicitly requested fast kernel failed its self-check on this device" },
  SFT5012: { severity: "info", title: "kernel choices were timed on this device (kept for later starts on the same card, driver and kernels)" },

  // SFT51xx: checkpoints (config.json, zip, pickle, safetensors)
  SFT5101: { severity: "error", title: "model config.json not found" },
  SFT5102: { severity: "error", title: "config.json is not valid JSON" },
  SFT5103: { severity: "error", title: "config.json lacks a required key or has a value of the wrong type" },
  SFT5104: { severity: "error", title: "config.json contradicts the model family" },
  SFT5105: { severity: "error", title: "no checkpoint files found" },
  SFT5106: { severity: "error", title: "corrupt or truncated zip archive" },
  SFT5107: { severity: "error", title: "zip entry escapes the archive directory" },
  SFT5108: { severity: "error", title: "unsupported zip entry (compressed or encrypted)" },
  SFT5109: { severity: "error", title: "refused pickle global" },
  SFT5110: { severity: "error", title: "malformed or unsupported pickle" },
  SFT5111: { severity: "error", title: "tensor data is truncated or out of range" },
  SFT5112: { severity: "error", title: "malformed safetensors header" },
  SFT5113: { severity: "error", title: "malformed shard index json" },
  SFT5114: { severity: "error", title: "checkpoint tensor has the wrong shape" },
  SFT5115: { severity: "error", title: "checkpoint lacks a tensor the family needs" },
  SFT5116: { severity: "error", title: "checkpoint has a tensor the family does not declare" },
  SFT5117: { severity: "error", title: "unsupported tensor dtype" },
  SFT5118: { severity: "error", title: "checkpoint file could not be read" },

  // SFT52xx: tokenizers
  SFT5201: { severity: "error", title: "tokenizer file missing or unreadable" },
  SFT5202: { severity: "error", title: "corrupt SentencePiece model" },
  SFT5203: { severity: "error", title: "unsupported SentencePiece setting" },
  SFT5204: { severity: "error", title: "invalid byte-level BPE tokenizer file" },
  SFT5205: { severity: "error", title: "unknown tokenizer kind" },
  SFT5206: { severity: "error", title: "tokenizer lacks a required special token" },

  // SFT53xx: datasets and data loading
  SFT5301: { severity: "error", title: "dataset file cannot be read" },
  SFT5302: { severity: "warning", title: "dataset record is not valid JSON" },
  SFT5303: { severity: "warning", title: "dataset record has the wrong type" },
  SFT5304: { severity: "warning", title: "dataset record lacks a required field" },
  SFT5305: { severity: "warning", title: "dataset field has the wrong type" },
  SFT5306: { severity: "warning", title: "dataset record has an empty question or answer" },
  SFT5307: { severity: "warning", title: "dataset line or record is too long" },
  SFT5308: { severity: "warning", title: "dataset line is not valid UTF-8" },
  SFT5309: { severity: "warning", title: "MOSS turn text lacks its role markers" },
  SFT5310: { severity: "error", title: "dataset file has the wrong top-level structure" },
  SFT5311: { severity: "error", title: "too many bad dataset records" },
  SFT5312: { severity: "error", title: "bad dataset record with on_error = fail" },
  SFT5313: { severity: "warning", title: "bad dataset records were skipped" },
  SFT5314: { severity: "info", title: "dataset records left out by a filter" },
  SFT5315: { severity: "error", title: "unknown dataset category" },
  SFT5316: { severity: "error", title: "unknown loss scheme for the model family" },
  SFT5317: { severity: "error", title: "invalid dataset reader setting" },
  SFT5318: { severity: "error", title: "tokenizer lacks a special token of the chat template" },
  SFT5319: { severity: "warning", title: "examples dropped: no answer token within max_length" },
  SFT5320: { severity: "error", title: "packing is not possible with this chat template" },
  SFT5321: { severity: "error", title: "no training examples" },
  SFT5322: { severity: "error", title: "saved data position does not match the data" },

  // SFT54xx: training runs and checkpoints
  SFT5401: { severity: "error", title: "no usable training checkpoint" },
  SFT5402: { severity: "error", title: "training settings the loop cannot run" },
  SFT5403: { severity: "error", title: "checkpoint does not match the model or data being trained" },

  // SFT56xx: lock files and run records
  SFT5601: { severity: "error", title: "lock file is malformed" },
  SFT5602: { severity: "error", title: "inputs changed since the lock file was written" },
  SFT5603: { severity: "error", title: "locked input cannot be read" },
  SFT5604: { severity: "error", title: "run directory or manifest cannot be read" },

  // ---- SFT57xx: text generation (sftc generate, sftc chat) ----
  SFT5701: { severity: "error", title: "prompt the model cannot generate from" },
  SFT5702: { severity: "error", title: "LoRA adapter directory cannot be used" },
  SFT5703: { severity: "error", title: "malformed line in a prompts file" },

  // ---- SFT47xx: export to other training engines (sftc export --target torchrun) ----
  SFT4701: { severity: "error", title: "LoRA target names no module of the model family" },
  SFT4702: { severity: "error", title: "pipeline setting the exported job cannot reproduce" },
  SFT4703: { severity: "error", title: "export directory cannot be written" },

  // ---- SFT58xx: LoRA adapters out (PEFT directories) and merged Hugging Face models ----
  SFT5801: { severity: "error", title: "adapter directory missing or unreadable" },
  SFT5802: { severity: "error", title: "adapter config is not a LoRA config sftc can use" },
  SFT5803: { severity: "error", title: "adapter does not fit the base model" },
  SFT5804: { severity: "error", title: "output directory already holds files" },
  SFT5805: { severity: "error", title: "output directory cannot be written" },
  SFT5806: { severity: "error", title: "invalid merge or export option" },
  SFT5807: { severity: "error", title: "LoRA weights to export do not match the model" },

  // ---- SFT59xx: the training job (sftc run) ----
  SFT5901: { severity: "error", title: "pipeline setting the training engines cannot run" },
  SFT5902: { severity: "error", title: "no GPU for the training run" },
} as const satisfies Record<string, CodeInfo>;

export type Code = keyof typeof table;
export const codes: Record<Code, CodeInfo> = table;
