// `curves.html`: a self-contained page (inline SVG, no scripts) with the loss, learning-rate and
// gradient-norm curves of a run, rewritten at every checkpoint and at the end.
import { rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { MetricsRecord } from "./metrics.ts";

export const CURVES_FILE = "curves.html";

interface Series {
  name: string;
  color: string;
  points: [number, number][];
  /** Draw a marker at each point (sparse series such as evaluations). */
  markers?: boolean;
}

const WIDTH = 900;
const HEIGHT = 260;
const MARGIN = { left: 70, right: 20, top: 30, bottom: 36 };

/** Up to ~6 round tick values covering [lo, hi]. */
function ticks(lo: number, hi: number): number[] {
  if (hi <= lo) return [lo];
  const raw = (hi - lo) / 5;
  const unit = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * unit).find((s) => s >= raw)!;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

const label = (v: number) => (v !== 0 && (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e5) ? v.toExponential(1) : String(Number(v.toPrecision(4))));
const escape = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");

function chart(title: string, series: Series[]): string {
  const all = series.flatMap((s) => s.points);
  if (all.length === 0) return `<h2>${escape(title)}</h2><p>No data yet.</p>`;
  const xs = all.map((p) => p[0]);
  const ys = all.map((p) => p[1]);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  const pad = y0 === y1 ? (Math.abs(y0) || 1) * 0.1 : (y1 - y0) * 0.05; // keep lines off the frame
  [y0, y1] = [y0 - pad, y1 + pad];
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const px = (x: number) => MARGIN.left + (x1 === x0 ? plotW / 2 : ((x - x0) / (x1 - x0)) * plotW);
  const py = (y: number) => MARGIN.top + (1 - (y - y0) / (y1 - y0)) * plotH;
  const parts: string[] = [];
  for (const t of ticks(y0, y1)) {
    parts.push(`<line x1="${MARGIN.left}" x2="${WIDTH - MARGIN.right}" y1="${py(t)}" y2="${py(t)}" stroke="#e5e5e5"/>`);
    parts.push(`<text x="${MARGIN.left - 6}" y="${py(t) + 4}" text-anchor="end">${label(t)}</text>`);
  }
  for (const t of ticks(x0, x1).filter(Number.isInteger)) {
    parts.push(`<line x1="${px(t)}" x2="${px(t)}" y1="${HEIGHT - MARGIN.bottom}" y2="${HEIGHT - MARGIN.bottom + 4}" stroke="#555"/>`);
    parts.push(`<text x="${px(t)}" y="${HEIGHT - MARGIN.bottom + 18}" text-anchor="middle">${t}</text>`);
  }
  parts.push(`<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#555"/>`);
  parts.push(`<text x="${WIDTH - MARGIN.right}" y="${HEIGHT - 4}" text-anchor="end">step</text>`);
  series.forEach((s, i) => {
    if (s.points.length === 0) return;
    const path = s.points.map((p) => `${px(p[0]).toFixed(1)},${py(p[1]).toFixed(1)}`).join(" ");
    parts.push(`<polyline points="${path}" fill="none" stroke="${s.color}" stroke-width="1.8"/>`);
    if (s.markers) for (const p of s.points) parts.push(`<circle cx="${px(p[0]).toFixed(1)}" cy="${py(p[1]).toFixed(1)}" r="3.5" fill="${s.color}"/>`);
    const lx = MARGIN.left + 10 + i * 150;
    parts.push(`<line x1="${lx}" x2="${lx + 18}" y1="${MARGIN.top - 12}" y2="${MARGIN.top - 12}" stroke="${s.color}" stroke-width="3"/>`);
    parts.push(`<text x="${lx + 24}" y="${MARGIN.top - 8}">${escape(s.name)}</text>`);
  });
  return `<h2>${escape(title)}</h2>
<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="sans-serif" font-size="12">
${parts.join("\n")}
</svg>`;
}

/** The page for `records` of run `title`. */
export function renderCurves(title: string, records: readonly MetricsRecord[]): string {
  const train = records.filter((r) => r.kind === "train");
  const evals = records.filter((r) => r.kind === "eval");
  const last = train.at(-1);
  const summary = last ? `step ${last.step}, loss ${label(last.loss)}, lr ${label(last.lr)}, ${last.elapsed.toPrecision(3)} s of training` : "no steps yet";
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>${escape(title)}</title>
<style>body{font-family:sans-serif;margin:20px;color:#222}h1{font-size:20px}h2{font-size:15px;margin:18px 0 4px}</style>
</head><body>
<h1>${escape(title)}</h1>
<p>${escape(summary)}</p>
${chart("Loss", [
  { name: "train loss", color: "#1f6fd1", points: train.map((r) => [r.step, r.loss]) },
  { name: "eval loss", color: "#d1541f", points: evals.map((r) => [r.step, r.eval_loss]), markers: true },
])}
${chart("Learning rate", [{ name: "lr", color: "#2a9d4b", points: train.map((r) => [r.step, r.lr]) }])}
${chart("Gradient norm (before clipping)", [{ name: "grad norm", color: "#8a4fc7", points: train.map((r) => [r.step, r.grad_norm]) }])}
</body></html>
`;
}

/** Rewrites `runDir/curves.html` atomically. */
export async function writeCurves(runDir: string, title: string, records: readonly MetricsRecord[]): Promise<void> {
  const path = join(runDir, CURVES_FILE);
  await writeFile(`${path}.tmp`, renderCurves(title, records));
  await rename(`${path}.tmp`, path);
}
