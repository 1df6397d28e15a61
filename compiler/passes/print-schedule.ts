// The schedule printer (`sftc --emit schedule`, and `SFT_DEBUG=1`): one block per launch with the
// library kernels it runs, its fused expression, the buffers it reads and writes, and its uniforms.
//   #3 matmul [matmul_tiled] epilogue residual
//      %41 = add(%12, matmul(%30[view], %7) {transB})
import { numel, type Node } from "../ir/node.ts";
import type { Launch, Schedule } from "./schedule.ts";
import { formatView } from "./views.ts";

function expression(n: Node, launch: Launch, inputs: Map<Node, string>, depth = 0): string {
  const name = inputs.get(n);
  if (name) return name;
  if (n.op === "const") return String(n.attrs.value);
  if (depth > 6) return "…";
  const args = n.inputs.map((i) => expression(i, launch, inputs, depth + 1));
  const flags = n.op === "matmul" ? [n.attrs.transA && "transA", n.attrs.transB && "transB"].filter(Boolean).join(",") : "";
  return `${n.op}(${args.join(", ")})${flags ? ` {${flags}}` : ""}`;
}

function formatLaunch(launch: Launch, index: number): string {
  const inputs = new Map(launch.inputs.map((i) => [i.node, formatView(i.view, `%${i.view.base.id}`)]));
  const head = `#${index} ${launch.kernel} [${launch.launches.join(", ")}]${launch.epilogue.length ? ` epilogue ${launch.epilogue.join("+")}` : ""}`;
  const body = launch.outputs.map((o) => `   %${o.id} = ${expression(o, launch, inputs)} : ${o.dtype}[${o.shape.join(",")}]`);
  const uniforms = Object.entries(launch.uniforms).map(([k, v]) => `${k}=${v}`).join(" ");
  return [head, ...body, `   uniforms ${uniforms}`].join("\n");
}

export function printSchedule(s: Schedule): string {
  const lines = s.launches.map(formatLaunch);
  for (const [name, v] of s.outputViews) lines.push(`output ${name} = ${formatView(v, `%${v.base.id}`)} (${numel(v.shape)} elements)`);
  return lines.join("\n") + "\n";
}

/** Library kernels launched, in total. */
export function kernelCount(s: Schedule): number {
  return s.launches.reduce((n, l) => n + l.launches.length, 0);
}
