// torch.save zip-pickle files (`pytorch_model*.bin`): `<dir>/data.pkl` holds the state dict
// with storages as persistent ids, and `<dir>/data/<key>` holds each storage's raw bytes.
import type { BinaryFile } from "./binary-file.ts";
import { fault } from "./fault.ts";
import { isTensor, unpickle } from "./pickle.ts";
import { checkExtent, type TensorInfo } from "./tensor.ts";
import { DTYPES } from "./dtype.ts";
import { entryDataOffset, readZipEntries, type ZipEntry } from "./zip.ts";

/** A state dict's pickle is small (names and shapes); anything far larger is not one. */
const MAX_PICKLE_BYTES = 256 * 1024 * 1024;

/** The tensors of one torch.save file, located but not read. */
export async function readTorchZipIndex(file: BinaryFile): Promise<TensorInfo[]> {
  const entries = await readZipEntries(file);
  const pickleEntry = entries.find((e) => e.name.endsWith("/data.pkl") && e.name.split("/").length === 2);
  if (!pickleEntry) fault("SFT5110", `${file.path} has no data.pkl: not a torch.save checkpoint`, file.path, "save the weights with torch.save(model.state_dict(), ...)");
  if (pickleEntry.size > MAX_PICKLE_BYTES) fault("SFT5110", `${file.path}: data.pkl is ${pickleEntry.size} bytes, too large for a state dict`, file.path);
  const folder = pickleEntry.name.slice(0, -"data.pkl".length);
  const pickleBytes = await file.read(await entryDataOffset(file, pickleEntry), pickleEntry.size, "data.pkl");
  const stateDict = unpickle(pickleBytes, `${file.path}: data.pkl`);
  if (!(stateDict instanceof Map)) fault("SFT5110", `${file.path}: data.pkl does not hold a state dict (a dict of tensors)`, file.path);

  const byName = new Map(entries.map((e) => [e.name, e]));
  const storages = new Map<string, { start: number; bytes: number }>();
  const infos: TensorInfo[] = [];
  for (const [name, value] of stateDict) {
    if (typeof name !== "string" || !isTensor(value)) {
      fault("SFT5110", `${file.path}: entry ${String(name)} of the state dict is not a tensor`, `${file.path}: ${String(name)}`);
    }
    const { storage } = value;
    let located = storages.get(storage.key);
    if (!located) {
      const entry: ZipEntry | undefined = byName.get(`${folder}data/${storage.key}`);
      if (!entry) fault("SFT5111", `${file.path}: storage ${storage.key} of tensor ${name} is missing from the archive`, `${file.path}: ${name}`, "the checkpoint is corrupt; download it again");
      const needed = storage.numel * DTYPES[storage.dtype].bytes;
      if (entry.size < needed) {
        fault("SFT5111", `${file.path}: storage ${storage.key} of tensor ${name} holds ${entry.size} bytes, ${needed} expected`, `${file.path}: ${name}`, "the checkpoint is truncated or corrupt; download it again");
      }
      located = { start: await entryDataOffset(file, entry), bytes: needed };
      storages.set(storage.key, located);
    }
    const info: TensorInfo = {
      name,
      dtype: storage.dtype,
      shape: value.shape,
      file: file.path,
      storageStart: located.start,
      storageBytes: located.bytes,
      offset: value.offset,
      stride: value.stride,
    };
    checkExtent(info);
    infos.push(info);
  }
  return infos;
}
