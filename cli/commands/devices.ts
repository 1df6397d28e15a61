// `sftc devices [--json]`: the WebGPU adapters Dawn finds, with their backend, vendor, features,
// key limits and the kernel tunings and checks that opening each ran (the fast kernels' with
// subgroup matrices; the score-matrix attention's, on any adapter, where SFT_ATTENTION asks for it).
// Also the `--device NAME` flag every GPU-opening command takes, and the helpers that open the
// device it names (else the one env SFT_ADAPTER names, else Dawn's choice).
import { flag, flagValue, type FlagSpec, type ParsedArgs } from "../args.ts";
import type { Io } from "../io.ts";
import { usageError } from "../pipeline-target.ts";
import type { Command } from "../registry.ts";
import { renderDiagnostic } from "../render.ts";
import type { Diagnostic, Result } from "../../compiler/diagnostics.ts";
import { listAdapters, openDevice, type AdapterSummary, type GpuDevice } from "../../runtime/gpu/device.ts";
import type { KernelCheck } from "../../runtime/gpu/kernel-probe.ts";
import { explicitRequest, selfCheckOf, type SelfCheckOutcome } from "../../runtime/gpu/kernel-self-check.ts";
import { tuningSource, type TuningOutcome } from "../../runtime/gpu/kernel-tuning.ts";
import { scoresRequested } from "../../runtime/gpu/attention-path-tuning.ts";
import { matmulStrategyFor } from "../../stdlib/kernels/matmul-strategy.ts";

/** `--device NAME`: the adapter a GPU-opening command uses. */
export const deviceFlag: FlagSpec = {
  name: "device",
  value: "one",
  placeholder: "NAME",
  description: "the GPU adapter to use: a substring of a name `sftc devices` lists (wins over env SFT_ADAPTER)",
};

/**
 * Opens the GPU the command line asks for: `--device NAME`, else env SFT_ADAPTER, else Dawn's
 * choice. A name matching no adapter is SFT5002, which lists the adapters there are. Warnings of
 * the opening (a fast kernel that failed its self-check, SFT5010) are printed here, once.
 */
export async function openRequestedDevice(args: ParsedArgs, io: Io): Promise<Result<GpuDevice>> {
  const fromEnv = io.env.SFT_ADAPTER?.trim();
  const opened = await openDevice({ adapter: flagValue(args, "device") ?? (fromEnv ? fromEnv : undefined) });
  if (opened.ok) for (const d of opened.diagnostics) io.err(renderDiagnostic(d, new Map(), io.color));
  return opened;
}

/**
 * Runs `work` on the GPU `--gpu` asks for (opened as `openRequestedDevice` does), or with none
 * without `--gpu`; the device is destroyed afterwards. `--device` without `--gpu` is a usage
 * error; a device that cannot be opened prints its diagnostics (exit 1).
 */
export async function withRequestedGpu(command: string, args: ParsedArgs, io: Io, work: (gpu: GpuDevice | undefined) => Promise<number>): Promise<number> {
  if (!flag(args, "gpu")) return flag(args, "device") ? usageError(io, command, "--device chooses the GPU of --gpu") : work(undefined);
  const opened = await openRequestedDevice(args, io);
  if (!opened.ok) return printDiagnostics(opened.diagnostics, io);
  try {
    return await work(opened.value);
  } finally {
    opened.value.destroy();
  }
}

function printDiagnostics(diagnostics: readonly Diagnostic[], io: Io): number {
  for (const d of diagnostics) io.err(renderDiagnostic(d, new Map(), io.color));
  return 1;
}

export const command: Command = {
  name: "devices",
  summary: "list the WebGPU adapters (GPUs) sftc can use, with their features and limits",
  usage: "[--json]",
  details:
    "Lists every WebGPU adapter Dawn finds: its name, backend (Vulkan, Metal, D3D12), vendor and architecture, " +
    "subgroup sizes, features and the limits that bound kernels and buffers. It opens each GPU (not CPU adapters), " +
    "which tunes its kernels: the decode matmul's workgroup and, with subgroup matrices (tensor cores), the matmul's " +
    "tiling and the attention kernels' layouts, each the fastest candidate that passes its check (kept for later " +
    "starts in SFT_TUNING_CACHE, else ~/.cache/sftc/kernel-tuning.json; SFT_TUNE=off skips it); with subgroup " +
    "matrices it then runs the fast kernels once against their CPU references; where SFT_ATTENTION=scores asks for " +
    "the score-matrix attention, it opens every adapter and checks that path the same way. It shows the tuning and, per " +
    "kernel, whether it was verified or sftc falls back to the plain kernel, and why. Commands that run on a GPU " +
    "(`generate --gpu`, `chat --gpu`, `score --gpu`) choose one with `--device NAME` (a substring of the name), " +
    "else with env SFT_ADAPTER, else take Dawn's default. `--json` prints the list as JSON. Exits 1 when no adapter is found.",
  flags: [{ name: "json", description: "print the adapters as JSON" }],
  async run(args: ParsedArgs, io: Io): Promise<number> {
    const listed = await listAdapters();
    if (!listed.ok) return printDiagnostics(listed.diagnostics, io);
    const adapters: Described[] = [];
    for (const a of listed.value) adapters.push({ ...a, ...(await selfCheck(a)) });
    if (flag(args, "json")) io.out(`${JSON.stringify(adapters, null, 2)}\n`);
    else io.out(adapters.map((a, i) => describe(a, i)).join("\n"));
    return 0;
  },
};

// The kernel checks that opening the adapter's device ran, or why it did not open; undefined where
// it was not opened (a CPU adapter with nothing to check).
type AdapterCheck = SelfCheckOutcome["checks"] | { openFailed: string } | undefined;

/** An adapter with its device's self-check and tunings, where opening it ran them. */
type Described = AdapterSummary & { selfCheck?: AdapterCheck; tunings?: TuningOutcome[] };

const hasSubgroupMatrices = (a: AdapterSummary) => a.features.includes("chromium-experimental-subgroup-matrix");

// Opens the adapters whose opening tunes or checks kernels: the GPUs (opening one tunes its kernels
// and, with subgroup matrices, checks the fast ones), and CPU adapters (which run the registers
// kernels and tune nothing) only where SFT_ATTENTION=scores asks for the score matrix's check.
async function selfCheck(a: AdapterSummary): Promise<{ selfCheck?: AdapterCheck; tunings?: TuningOutcome[] }> {
  // as the device's own choices read them (SFT_MATMUL, SFT_ATTENTION included)
  const strategy = matmulStrategyFor(a);
  const cpu = !hasSubgroupMatrices(a) && strategy.ok && strategy.value === "registers";
  if (cpu && !scoresRequested()) return {};
  const opened = await openDevice({ adapter: a.name });
  if (!opened.ok) return { selfCheck: { openFailed: opened.diagnostics.map((d) => `${d.code} ${d.message}`).join("; ") } };
  const outcome = selfCheckOf(opened.value);
  opened.value.destroy();
  return { selfCheck: outcome?.checks, tunings: outcome?.tunings };
}

/** A tuning as `sftc devices` prints it: the choice and its time, then the runners-up (the rest counted) and any rejected. */
export function describeTuning(t: TuningOutcome): string[] {
  const ms = (x: number) => `${x.toFixed(3)} ms`;
  const [first, ...rest] = t.timings;
  const others = rest.slice(0, 3).map((r) => `${r.name} ${ms(r.ms)}`);
  const more = rest.length > 3 ? `, ${rest.length - 3} more` : "";
  const rejected = t.rejected.length ? `; ${t.rejected.length} failed their check (${t.rejected.map((r) => r.name).join(", ")})` : "";
  return [`${t.job}: ${t.chosen} (${ms(first.ms)} on ${t.problem}; ${tuningSource(t)})`, `  next: ${others.join(", ") || "none"}${more}${rejected}`];
}

function describeCheck(c: KernelCheck): string {
  const error = c.relativeError === undefined ? "" : `, relative error ${c.relativeError.toExponential(2)} (tolerance ${c.tolerance.toExponential(0)})`;
  if (c.verified) return `${c.op}: verified ${c.kernel}${error}`;
  const request = explicitRequest(c.op);
  return request ? `${c.op}: ${c.kernel} failed (${c.failure}); commands refuse to run while ${request} (SFT5011)` : `${c.op}: fell back to the ${c.fallback}: ${c.kernel} failed (${c.failure})`;
}

function describeChecks(a: Described): string[] {
  const checks = a.selfCheck;
  if (checks && "openFailed" in checks) return [`  self-check    not run: the device did not open (${checks.openFailed})`];
  const lines = Object.values(checks ?? {}).map(describeCheck);
  if (lines.length === 0) {
    const why = hasSubgroupMatrices(a) ? "no subgroup-matrix kernel chosen, see SFT_MATMUL and SFT_ATTENTION" : "no subgroup matrices: the plain kernels run";
    return [`  self-check    none (${why})`];
  }
  return lines.map((line, i) => `${i === 0 ? "  self-check    " : "                "}${line}`);
}

function describe(a: Described, index: number): string {
  const tunings = (a.tunings ?? []).flatMap(describeTuning).map((line, i) => `${i === 0 ? "  tuning        " : "                "}${line}`);
  const limits = Object.entries(a.limits).map(([key, value]) => `    ${key.padEnd(34)} ${value}`);
  return [
    `[${index}] ${a.name}`,
    `  backend       ${a.backend}`,
    `  vendor        ${a.vendor || "-"}${a.architecture ? ` (${a.architecture})` : ""}`,
    `  subgroups     ${a.subgroupMinSize}..${a.subgroupMaxSize}`,
    `  features      ${a.features.join(", ")}`,
    ...tunings,
    ...describeChecks(a),
    "  limits",
    ...limits,
    "",
  ].join("\n");
}
