// BelleGroup/train_0.5M_CN (`Belle_open_source_0.5M.json`): JSON Lines despite the extension,
// `{instruction, input, output}` with `input` always "" (datasets.md A.1). One BELLE README says
// the release uses `{input, target}` instead, so that shape is accepted too.
import { bad, isObject, notAnObject, optionalStringField, singleTurn, stringField, type RecordOutcome } from "../record.ts";

export function parseBelle(value: unknown): RecordOutcome {
  if (!isObject(value)) return bad(notAnObject(value, "{instruction, input, output}"));
  if (!("instruction" in value) && !("output" in value) && "target" in value) {
    const input = stringField(value, "input");
    if (typeof input !== "string") return bad(input);
    const target = stringField(value, "target");
    if (typeof target !== "string") return bad(target);
    return singleTurn(input, target);
  }
  const instruction = stringField(value, "instruction");
  if (typeof instruction !== "string") return bad(instruction);
  const input = optionalStringField(value, "input");
  if (typeof input === "object") return bad(input);
  const output = stringField(value, "output");
  if (typeof output !== "string") return bad(output);
  // BELLE's convert_to_conv_data.py and LLM_training join instruction and input as they are.
  return singleTurn(instruction + (input ?? ""), output);
}
