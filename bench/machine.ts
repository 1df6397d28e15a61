// The host a benchmark ran on: CPUs, memory, load, software versions, and the NVIDIA driver
// when nvidia-smi is there. The load average matters: on a shared machine it explains figures.
import { execFileSync } from "node:child_process";
import { availableParallelism, cpus, hostname, loadavg, release, totalmem } from "node:os";
import { webgpuVersion } from "../runtime/gpu/device.ts";

export interface MachineFacts {
  hostname: string;
  nproc: number;
  cpuModel: string;
  memoryGiB: number;
  os: string;
  node: string;
  /** Version of the npm `webgpu` package (dawn.node). */
  webgpu: string;
  /** `nvidia-smi` name, driver version and memory of each GPU, when the tool exists. */
  nvidiaSmi?: string;
}


function nvidiaSmi(): string | undefined {
  try {
    const args = ["--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"];
    return execFileSync("nvidia-smi", args, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
  } catch {
    return undefined;
  }
}

export function machineFacts(): MachineFacts {
  return {
    hostname: hostname(),
    nproc: availableParallelism(),
    cpuModel: cpus()[0]?.model ?? "unknown",
    memoryGiB: totalmem() / 2 ** 30,
    os: `${process.platform} ${release()}`,
    node: process.version,
    webgpu: webgpuVersion(),
    nvidiaSmi: nvidiaSmi(),
  };
}

/** The 1, 5 and 15 minute load averages. */
export function loadAverage(): [number, number, number] {
  const [a, b, c] = loadavg();
  return [a, b, c];
}
