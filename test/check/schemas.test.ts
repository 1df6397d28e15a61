// The block schemas themselves: each compiles in ajv's strict mode, every key is described, every
// default is a valid value of its key, and the family defaults (decoding, size presets) pass
// the same checks a user's values do.
import { Ajv } from "ajv";
import { test } from "uvu";
import * as assert from "uvu/assert";
import type { Schema } from "../../stdlib/schemas/common.ts";
import { decodeSchemas } from "../../stdlib/schemas/decode.ts";
import { sections } from "../../stdlib/schemas/index.ts";
import { families } from "../../stdlib/schemas/model.ts";

const ajv = new Ajv({ strict: true, strictRequired: false, discriminator: true });
ajv.addKeyword({ keyword: "x-path" });

const blocks = Object.entries(sections).flatMap(([keyword, info]) => Object.entries(info.kinds).map(([kind, schema]) => ({ name: `${keyword} ${kind}`.trim(), schema })));

function properties(schema: Schema): [string, Schema][] {
  const own = Object.entries((schema.properties ?? {}) as Record<string, Schema>);
  const variants = own.flatMap(([key, s]) => ((s.oneOf ?? []) as Schema[]).flatMap((v) => properties(v).filter(([k]) => k !== "type").map(([k, f]): [string, Schema] => [`${key}.${k}`, f])));
  return [...own, ...variants];
}

test("every block schema compiles in strict mode", () => {
  for (const { name, schema } of blocks) {
    try {
      ajv.compile(schema);
    } catch (e) {
      assert.unreachable(`${name}: ${String(e)}`);
    }
  }
});

test("every key has a description and a valid default", () => {
  for (const { name, schema } of blocks) {
    for (const [key, property] of properties(schema)) {
      assert.ok(typeof property.description === "string" && property.description.length > 10, `${name}: \`${key}\` lacks a description`);
      if (property.default === undefined) continue;
      const valid = ajv.validate(property, property.default);
      assert.ok(valid, `${name}: the default of \`${key}\` is not valid: ${ajv.errorsText()}`);
    }
  }
});

test("each family's generation defaults are valid values for its decoding strategy", () => {
  for (const [family, facts] of Object.entries(families)) {
    const { strategy, ...values } = facts.generation;
    const valid = ajv.validate(decodeSchemas[strategy], values);
    assert.ok(valid, `${family}: ${ajv.errorsText()}`);
  }
});

test("every size preset has dimensions that fit together", () => {
  for (const [family, facts] of Object.entries(families)) {
    for (const [size, d] of Object.entries(facts.sizes)) {
      const where = `${family} ${size}`;
      assert.is(d.hidden_size % d.num_heads, 0, `${where}: heads divide the width`);
      if (d.kv_groups !== undefined) assert.is(d.num_heads % d.kv_groups, 0, `${where}: kv groups divide the heads`);
      if (d.rotary_dim !== undefined) assert.ok(d.rotary_dim % 2 === 0 && d.rotary_dim <= d.hidden_size / d.num_heads, `${where}: rotary_dim`);
    }
    assert.ok(facts.nativeSize in facts.sizes, `${family}: the published size is a preset`);
  }
});

test.run();
