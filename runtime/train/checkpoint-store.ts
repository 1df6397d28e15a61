// Training checkpoints that survive crashes. Each one is a directory `step-NNNNNNNN/` holding
// `tensors.safetensors` (trainable weights, optimizer moments) and `state.json` (step,
// scheduler, RNG states, data position). It is built under a temporary name, every file is
// fsynced, and only then renamed into place: a crash at any moment leaves either the old set
// of checkpoints or the old set plus one complete new one. `latest` names the newest; if it
// is missing or stale, the newest complete directory is used.
import { mkdir, open, readdir, readFile, rename, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { diag, fail, ok, type Result } from "../../compiler/diagnostics.ts";
import { byteLength, writeSafetensors, type TensorToWrite } from "../export/safetensors-writer.ts";

export interface TrainingState {
  step: number;
  /** Opaque to the store: the data loader's resume position. */
  dataPosition: unknown;
  /** Every random stream's state, by name (`data`, `dropout`, ...). */
  rng: Record<string, number>;
  scheduler: Record<string, number>;
  /** What `tensors.safetensors` must hold: name -> byte length (a cheap integrity check). */
  tensorBytes: Record<string, number>;
  extra?: Record<string, unknown>;
}

export interface SavedCheckpoint {
  dir: string;
  state: TrainingState;
}

const stepDirName = (step: number) => `step-${String(step).padStart(8, "0")}`;
const isStepDir = (name: string) => /^step-\d{8}$/.test(name);

async function syncFile(path: string): Promise<void> {
  const handle = await open(path, "r");
  await handle.sync();
  await handle.close();
}

async function writeSynced(path: string, text: string): Promise<void> {
  const handle = await open(path, "w");
  await handle.writeFile(text);
  await handle.sync();
  await handle.close();
}

/** Writes checkpoint `state.step` under `root`, then points `latest` at it and prunes old ones. */
export async function saveCheckpoint(root: string, state: Omit<TrainingState, "tensorBytes">, tensors: readonly TensorToWrite[], keep = 2): Promise<string> {
  await mkdir(root, { recursive: true });
  const name = stepDirName(state.step);
  const temp = join(root, `.${name}.partial-${process.pid}`);
  await rm(temp, { recursive: true, force: true });
  await mkdir(temp);
  const full: TrainingState = { ...state, tensorBytes: Object.fromEntries(tensors.map((t) => [t.name, byteLength(t)])) };
  await writeSafetensors(join(temp, "tensors.safetensors"), tensors);
  await syncFile(join(temp, "tensors.safetensors"));
  await writeSynced(join(temp, "state.json"), `${JSON.stringify(full, null, 2)}\n`);
  const final = join(root, name);
  await rm(final, { recursive: true, force: true }); // a re-save of the same step replaces it
  await rename(temp, final);
  await writeSynced(join(root, "latest.tmp"), `${name}\n`);
  await rename(join(root, "latest.tmp"), join(root, "latest"));
  await prune(root, keep, name);
  return final;
}

async function prune(root: string, keep: number, newest: string): Promise<void> {
  const entries = await readdir(root);
  for (const e of entries) {
    if (e.startsWith(".step-") && !e.endsWith(`-${process.pid}`)) await rm(join(root, e), { recursive: true, force: true });
  }
  const steps = entries.filter(isStepDir).sort();
  for (const old of steps.slice(0, Math.max(0, steps.length - keep))) {
    if (old !== newest) await rm(join(root, old), { recursive: true, force: true });
  }
}

async function readComplete(dir: string): Promise<TrainingState | undefined> {
  try {
    const state = JSON.parse(await readFile(join(dir, "state.json"), "utf8")) as TrainingState;
    const size = (await stat(join(dir, "tensors.safetensors"))).size;
    const expected = Object.values(state.tensorBytes).reduce((a, b) => a + b, 0);
    return size >= expected + 8 ? state : undefined;
  } catch {
    return undefined;
  }
}

/** The checkpoint in one `step-NNNNNNNN` directory; an incomplete one is a diagnostic. */
export async function loadCheckpointAt(dir: string): Promise<Result<SavedCheckpoint>> {
  const state = await readComplete(dir);
  if (state) return ok({ dir, state });
  return fail(diag("SFT5401", `${dir} is not a complete checkpoint`, { where: dir, hint: "point at a step-NNNNNNNN directory holding state.json and tensors.safetensors, or at the run's checkpoints directory" }));
}

/** The newest complete checkpoint under `root`, or undefined when there is none. */
export async function loadLatestCheckpoint(root: string): Promise<Result<SavedCheckpoint | undefined>> {
  let entries: string[];
  try {
    entries = await readdir(root);
  } catch {
    return ok(undefined);
  }
  const pointed = await readFile(join(root, "latest"), "utf8").then((s) => s.trim(), () => undefined);
  const candidates = [...(pointed && isStepDir(pointed) ? [pointed] : []), ...entries.filter(isStepDir).sort().reverse()];
  for (const name of candidates) {
    const state = await readComplete(join(root, name));
    if (state) return ok({ dir: join(root, name), state });
  }
  if (entries.some(isStepDir)) {
    return fail(diag("SFT5401", `no complete checkpoint under ${root}`, { where: root, hint: "start the run again without --resume" }));
  }
  return ok(undefined);
}

