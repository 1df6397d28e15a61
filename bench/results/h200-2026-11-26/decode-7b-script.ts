import { openDevice } from "../../../runtime/gpu/device.ts";
import { copyBandwidth, torchDeviceFor } from "../../ceilings.ts";
import { benchGeneration, torchGenerate } from "../../generation.ts";
import { adapterFacts } from "../../adapter.ts";
const opened = await openDevice();
if (!opened.ok) { console.log(JSON.stringify(opened.diagnostics)); process.exit(1); }
const gpu = opened.value;
const a = await adapterFacts(gpu);
console.log("adapter", a.name, a.description, "maxBuf", gpu.limits.maxBufferSize, "maxBind", gpu.limits.maxStorageBufferBindingSize);
const t0 = performance.now();
const bw = await copyBandwidth(gpu, 1024 * 2 ** 20, 20);
console.log("copy GB/s", bw.gbs.toFixed(1), bw.timing);
const sizes = { promptTokens: 128, newTokens: Number(process.env.NEW ?? 64) };
const cases = await benchGeneration(gpu, { promptTokens: 8, newTokens: 4 }, sizes, bw.gbs);
const t1 = performance.now();
for (const c of cases) console.log(JSON.stringify({ ...c, decodeSamplesNs: c.measured ? c.decodeSamplesNs.map((x) => Math.round(x / 1e4) / 100) : undefined }));
console.log("sftc part s", ((t1 - t0) / 1000).toFixed(1));
console.log("errors", JSON.stringify((await gpu.takeErrors()).map((e) => e.message)));
if (process.env.TORCH !== "0") {
  const t = torchGenerate(torchDeviceFor(gpu), sizes);
  console.log(JSON.stringify(t));
  console.log("torch part s", ((performance.now() - t1) / 1000).toFixed(1));
}
gpu.destroy();
process.exit(0);
