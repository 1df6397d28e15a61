// One-off device probe: adapter facts and a minimal subgroup-matrix product per f16 config.
import { create, globals } from "webgpu";
Object.assign(globalThis, globals);
const gpu = create(["enable-dawn-features=allow_unsafe_apis,vulkan_enable_f16_on_nvidia", "disable-dawn-features=timestamp_quantization"]);
const adapter = await gpu.requestAdapter({ powerPreference: "high-performance" });
const info = adapter.info;
console.log(JSON.stringify({ vendor: info.vendor, architecture: info.architecture, device: info.device, description: info.description,
  subgroupMinSize: info.subgroupMinSize, subgroupMaxSize: info.subgroupMaxSize, configs: info.subgroupMatrixConfigs,
  features: [...adapter.features].sort(), limits: Object.fromEntries(["maxStorageBufferBindingSize","maxBufferSize","maxComputeWorkgroupStorageSize","maxComputeInvocationsPerWorkgroup"].map(k => [k, adapter.limits[k]])) }, null, 1));
const want = ["shader-f16", "subgroups", "timestamp-query", "chromium-experimental-subgroup-matrix"].filter((f) => adapter.features.has(f));
const device = await adapter.requestDevice({ requiredFeatures: want, requiredLimits: { maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize, maxBufferSize: adapter.limits.maxBufferSize } });
device.addEventListener("uncapturederror", (e) => { e.preventDefault(); console.log("uncaptured:", e.error.message); });
const f16 = (x) => { const a = new Float16Array ? null : null; return x; };
function toHalfBits(v) { // round-to-nearest-even f32 -> f16 bits (values here are small ints / 8)
  const f = new Float32Array([v]); const u = new Uint32Array(f.buffer)[0];
  const s = (u >>> 16) & 0x8000; let e = ((u >>> 23) & 0xff) - 127 + 15; let m = u & 0x7fffff;
  if (v === 0) return s; if (e <= 0) return s; return s | (e << 10) | (m >>> 13);
}
for (const c of (info.subgroupMatrixConfigs ?? [])) {
  if (c.componentType !== "f16") continue;
  const { M, N, K } = c; const rt = c.resultComponentType; const wg = info.subgroupMaxSize;
  for (const where of ["storage", "workgroup"]) {
    const code = `enable f16;
enable chromium_experimental_subgroup_matrix;
@group(0) @binding(0) var<storage, read> a: array<f16>;
@group(0) @binding(1) var<storage, read> b: array<f16>;
@group(0) @binding(2) var<storage, read_write> c: array<${rt}>;
var<workgroup> ta: array<f16, ${M * K}>;
var<workgroup> tb: array<f16, ${K * N}>;
@compute @workgroup_size(${wg})
fn main(@builtin(local_invocation_index) li: u32) {
  for (var i = li; i < ${M * K}u; i += ${wg}u) { ta[i] = a[i]; }
  for (var i = li; i < ${K * N}u; i += ${wg}u) { tb[i] = b[i]; }
  workgroupBarrier();
  ${where === "storage"
    ? `let l = subgroupMatrixLoad<subgroup_matrix_left<f16, ${K}, ${M}>>(&a, 0u, false, ${K}u);
  let r = subgroupMatrixLoad<subgroup_matrix_right<f16, ${N}, ${K}>>(&b, 0u, false, ${N}u);`
    : `let l = subgroupMatrixLoad<subgroup_matrix_left<f16, ${K}, ${M}>>(&ta, 0u, false, ${K}u);
  let r = subgroupMatrixLoad<subgroup_matrix_right<f16, ${N}, ${K}>>(&tb, 0u, false, ${N}u);`}
  var acc = subgroup_matrix_result<${rt}, ${N}, ${M}>();
  acc = subgroupMatrixMultiplyAccumulate(l, r, acc);
  subgroupMatrixStore(&c, 0u, acc, false, ${N}u);
}`;
    device.pushErrorScope("validation");
    const module = device.createShaderModule({ code });
    const ci = await module.getCompilationInfo();
    const msgs = ci.messages.map((m) => `${m.type} ${m.lineNum}:${m.linePos} ${m.message}`);
    let pipeline;
    try { pipeline = device.createComputePipeline({ layout: "auto", compute: { module, entryPoint: "main" } }); } catch (e) { msgs.push(String(e)); }
    const err = await device.popErrorScope();
    if (err) msgs.push("validation: " + err.message);
    if (!pipeline || err) { console.log(`config ${M}x${N}x${K} ${rt} ${where}: FAILED ${msgs.join(" | ")}`); continue; }
    const A = Array.from({ length: M * K }, (_, i) => ((i * 7) % 11) - 5); const B = Array.from({ length: K * N }, (_, i) => ((i * 5) % 13) - 6);
    const mk = (vals) => { const buf = device.createBuffer({ size: Math.max(16, vals.length * 2 + 3 & ~3), usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST }); const h = new Uint16Array(Math.max(8, (vals.length + 1) & ~1)); vals.forEach((v, i) => h[i] = toHalfBits(v)); device.queue.writeBuffer(buf, 0, h); return buf; };
    const bytes = M * N * (rt === "f16" ? 2 : 4);
    const cb = device.createBuffer({ size: bytes, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
    const rb = device.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    const bg = device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [mk(A), mk(B), cb].map((buffer, binding) => ({ binding, resource: { buffer } })) });
    const enc = device.createCommandEncoder(); const p = enc.beginComputePass(); p.setPipeline(pipeline); p.setBindGroup(0, bg); p.dispatchWorkgroups(1); p.end();
    enc.copyBufferToBuffer(cb, 0, rb, 0, bytes); device.queue.submit([enc.finish()]);
    await rb.mapAsync(GPUMapMode.READ);
    let out; if (rt === "f16") { const h = new Uint16Array(rb.getMappedRange().slice(0)); out = Array.from(h, (x) => { const s = x & 0x8000 ? -1 : 1; const e = (x >> 10) & 31, m = x & 1023; return e === 0 ? s * m * 2 ** -24 : s * (1 + m / 1024) * 2 ** (e - 15); }); } else out = Array.from(new Float32Array(rb.getMappedRange().slice(0)));
    let maxErr = 0; for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) { let s = 0; for (let k = 0; k < K; k++) s += A[i * K + k] * B[k * N + j]; maxErr = Math.max(maxErr, Math.abs(s - out[i * N + j])); }
    console.log(`config ${M}x${N}x${K} f16->${rt} ${where}: ran, max abs error ${maxErr} (exact integers expected 0) ${msgs.join(" | ")}`);
  }
}
device.destroy();
