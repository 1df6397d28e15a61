// Every family's chat template, by family name.
import { baichuan13b } from "./baichuan13b.ts";
import { baichuan7b } from "./baichuan7b.ts";
import { chatglm } from "./chatglm.ts";
import { chatglm2 } from "./chatglm2.ts";
import { moss } from "./moss.ts";
import type { ChatTemplate, TemplateName } from "./template.ts";

export const templates: Record<TemplateName, ChatTemplate> = { baichuan7b, baichuan13b, moss, chatglm, chatglm2 };
