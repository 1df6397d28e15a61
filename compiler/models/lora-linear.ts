// A linear layer in nn.Linear's layout, optionally with a LoRA adapter (Hu et al. 2021, as PEFT
// names and scales it): y = x Wᵀ (+ b) + (alpha / rank) · (dropout(x) Aᵀ) Bᵀ. The low-rank path
// goes through the rank-r intermediate, never a materialized (out, in) update, so a frozen W gets
// no gradient work beyond the input gradient the layers below need. Dropout, as PEFT applies it,
// touches the adapter's input only; its mask is a graph input the host draws (0 or 1 / (1 - p)),
// so every engine multiplies by the same mask.
import * as b from "../ir/build.ts";
import type { Node } from "../ir/node.ts";

/** A LoRA adapter: A (rank, in), B (out, rank), the alpha / rank scale, and an optional dropout mask (x's shape). */
export interface LoraAdapter {
  a: Node;
  b: Node;
  scale: number;
  dropoutMask?: Node;
}

/** x (..., in) through W (out, in), an optional bias (out) and an optional adapter -> (..., out). */
export function linear(x: Node, weight: Node, bias: Node | null, adapter: LoraAdapter | null): Node {
  let y = b.matmul(x, weight, { transB: true });
  if (bias) y = b.add(y, b.expandTo(bias, y.shape));
  if (!adapter) return y;
  const dropped = adapter.dropoutMask ? b.mul(x, adapter.dropoutMask) : x; // (..., in)
  // scaled on the rank-sized intermediate, the cheaper side
  const down = b.scale(b.matmul(dropped, adapter.a, { transB: true }), adapter.scale); // (..., rank)
  return b.add(y, b.matmul(down, adapter.b, { transB: true })); // (..., out)
}

/** PEFT's parameter names for the adapter of the linear whose weight is `weightName`. */
export function loraParamNames(weightName: string): { a: string; b: string } {
  const module = weightName.replace(/\.weight$/, "");
  return { a: `${module}.lora_A.weight`, b: `${module}.lora_B.weight` };
}

/** The graph input holding the dropout mask of the adapter on `weightName`'s linear. */
export function loraDropoutInputName(weightName: string): string {
  return `${weightName.replace(/\.weight$/, "")}.lora_dropout`;
}
