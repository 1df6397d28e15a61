// The readable graph printer (`sftc --emit graph`): one line per node in topological order,
//   %12 = matmul(%3, %7) {transB} : f32[2,5,24]
import { topoSort, type Attrs, type Graph, type Node } from "./node.ts";

function formatAttrs(n: Node): string {
  const a: Attrs = n.attrs;
  const parts: string[] = [];
  for (const [key, value] of Object.entries(a)) {
    if (value === undefined || value === false || key === "dtype" || key === "shape" && (n.op === "const" || n.op === "param" || n.op === "input")) continue;
    if (value === true) parts.push(key);
    else if (typeof value === "object" && !Array.isArray(value)) parts.push(`${key}: {${formatObject(value as object)}}`);
    else if (Array.isArray(value)) parts.push(`${key}: [${value.join(",")}]`);
    else parts.push(`${key}: ${typeof value === "string" ? JSON.stringify(value) : value}`);
  }
  return parts.length ? ` {${parts.join(", ")}}` : "";
}

function formatObject(o: object): string {
  return Object.entries(o)
    .filter(([, v]) => v !== false)
    .map(([k, v]) => (v === true ? k : `${k}: ${v}`))
    .join(", ");
}

function formatNode(n: Node): string {
  const args = n.inputs.map((i) => `%${i.id}`).join(", ");
  return `%${n.id} = ${n.op}(${args})${formatAttrs(n)} : ${n.dtype}[${n.shape.join(",")}]`;
}

/** The whole graph, then its named outputs. */
export function printGraph(g: Graph): string {
  const lines = topoSort(g.outputs.values()).map(formatNode);
  for (const [name, n] of g.outputs) lines.push(`output ${name} = %${n.id}`);
  return lines.join("\n") + "\n";
}
