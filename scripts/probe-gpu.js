#!/usr/bin/env node
// Prints the WebGPU adapter Dawn finds (exit 0), or says none was found (exit 1).
import { create } from "webgpu";

const gpu = create([]);
const adapter = await gpu.requestAdapter();
if (!adapter) {
  console.log("no WebGPU adapter found");
  process.exit(1);
}
const { vendor, architecture, device, description } = adapter.info;
console.log(`WebGPU adapter: ${[vendor, architecture, device, description].filter(Boolean).join(" / ")}`);
process.exit(0);
