// The model families sftc knows. Adding a family = adding its file and one line here.
import type { Family, FamilyName } from "./family.ts";
import { baichuan7b } from "./baichuan7b.ts";
import { baichuan13b } from "./baichuan13b.ts";
import { moss } from "./moss.ts";
import { chatglm } from "./chatglm.ts";
import { chatglm2 } from "./chatglm2.ts";

/** Every family, by its name in `.sft` files. */
export const families: Readonly<Record<FamilyName, Family>> = { baichuan7b, baichuan13b, moss, chatglm, chatglm2 };

export const familyNames = Object.keys(families) as FamilyName[];

export function isFamilyName(name: string): name is FamilyName {
  return Object.hasOwn(families, name);
}

export type { Family, FamilyName } from "./family.ts";
