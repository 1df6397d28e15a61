// Random access to a (possibly multi-gigabyte) file: reads exactly the bytes asked for, so a
// checkpoint is never held whole in memory.
import { open, type FileHandle } from "node:fs/promises";
import { fault } from "./fault.ts";

export class BinaryFile {
  private constructor(
    readonly path: string,
    readonly size: number,
    private readonly handle: FileHandle,
  ) {}

  static async open(path: string): Promise<BinaryFile> {
    const handle = await open(path, "r");
    const { size } = await handle.stat();
    return new BinaryFile(path, size, handle);
  }

  /** `length` bytes at `position`; a range past the end of the file is a truncation fault. */
  async read(position: number, length: number, what: string): Promise<Uint8Array> {
    if (position < 0 || position + length > this.size) {
      fault("SFT5111", `${this.path} is truncated: ${what} needs bytes ${position}..${position + length} but the file has ${this.size}`, this.path, "download the file again");
    }
    const bytes = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await this.handle.read(bytes, done, length - done, position + done);
      if (bytesRead === 0) fault("SFT5111", `${this.path} ended while reading ${what}`, this.path, "download the file again");
      done += bytesRead;
    }
    return bytes;
  }

  async close(): Promise<void> {
    await this.handle.close();
  }
}

/** Opens `path`, runs `work` with it and closes it whatever happens. */
export async function withFile<T>(path: string, work: (file: BinaryFile) => Promise<T>): Promise<T> {
  const file = await BinaryFile.open(path);
  try {
    return await work(file);
  } finally {
    await file.close();
  }
}
