// Picks the fastest correct matmul for the training forward (f32 x f32 (B^T) at the FFN-up shape)
// from the bench's progress lines; prints the environment assignment that selects it.
import { readFileSync } from "node:fs";
const rows = [];
for (const line of readFileSync(process.argv[2], "utf8").split("\n")) {
  const m = /^bench: matmul (.+) f32 x f32 \(B\^T\), FFN up \d+x\d+x\d+: ([\d.]+) ms, .*relative error ([^\s]+)/.exec(line);
  if (m && Number(m[3]) < 1e-4) rows.push({ label: m[1], ms: Number(m[2]) });
}
rows.sort((a, b) => a.ms - b.ms);
console.error(rows.map((r) => `${r.ms.toFixed(3)} ms  ${r.label}`).join("\n"));
const best = rows[0];
if (!best) console.log("");
else if (best.label.startsWith("subgroup-matrix")) console.log(`SFT_MATMUL_TILING=${/^subgroup-matrix \S+ \S+ (\S+) /.exec(best.label)[1]}`);
else console.log(`SFT_MATMUL=${best.label.split(" ")[0]}`);
