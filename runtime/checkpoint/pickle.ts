// A restricted unpickler for torch.save's data.pkl. It interprets the opcodes torch emits
// (protocol 2, and the protocol 4 additions) as data: no global is ever imported or called.
// Only the handful of globals a state dict needs are recognised, each mapped to a plain value;
// any other global is refused the moment it appears.
import { fault } from "./fault.ts";
import { dtypeOfTorchStorage, type TensorDType } from "./dtype.ts";

/** A storage named by a persistent id: its bytes are the archive entry `data/<key>`. */
export interface StorageRef {
  kind: "storage";
  dtype: TensorDType;
  key: string;
  numel: number;
}

/** A tensor view into a storage, as `torch._utils._rebuild_tensor_v2` describes it. */
export interface TensorRef {
  kind: "tensor";
  storage: StorageRef;
  /** In elements. */
  offset: number;
  shape: number[];
  stride: number[];
}

interface Global {
  kind: "global";
  name: string;
}

const ACCEPTED_GLOBALS = new Set([
  "collections.OrderedDict",
  "torch._utils._rebuild_tensor_v2",
  "torch._utils._rebuild_parameter",
  "torch.FloatStorage",
  "torch.HalfStorage",
  "torch.BFloat16Storage",
  "torch.ByteStorage",
  "torch.CharStorage",
  "torch.IntStorage",
  "torch.LongStorage",
  "torch.BoolStorage",
  "torch.DoubleStorage",
]);

const MARK = Symbol("mark");
const MAX_STACK = 10_000;

/**
 * Interprets `bytes` (from `where`, for messages) and returns the unpickled value: dicts as
 * `Map`, lists and tuples as arrays, tensors as `TensorRef`.
 */
export function unpickle(bytes: Uint8Array, where: string): unknown {
  return new Unpickler(bytes, where).run();
}

class Unpickler {
  private at = 0;
  private stack: unknown[] = [];
  private marks: number[] = [];
  private memo = new Map<number, unknown>();
  private view: DataView;

  constructor(
    private readonly bytes: Uint8Array,
    private readonly where: string,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  run(): unknown {
    for (;;) {
      const opcode = this.u8();
      switch (opcode) {
        case 0x80: this.u8(); break; // PROTO
        case 0x95: this.take(8); break; // FRAME: a length hint only
        case 0x2e: return this.pop(); // STOP
        case 0x28: this.marks.push(this.stack.length); this.push(MARK); break; // MARK
        case 0x7d: this.push(new Map()); break; // EMPTY_DICT
        case 0x5d: this.push([]); break; // EMPTY_LIST
        case 0x29: this.push([]); break; // EMPTY_TUPLE
        case 0x4e: this.push(null); break; // NONE
        case 0x88: this.push(true); break; // NEWTRUE
        case 0x89: this.push(false); break; // NEWFALSE
        case 0x4b: this.push(this.u8()); break; // BININT1
        case 0x4d: this.push(this.view.getUint16(this.skip(2), true)); break; // BININT2
        case 0x4a: this.push(this.view.getInt32(this.skip(4), true)); break; // BININT
        case 0x8a: this.push(this.long(this.u8())); break; // LONG1
        case 0x8b: this.push(this.long(this.u32())); break; // LONG4
        case 0x47: this.push(this.view.getFloat64(this.skip(8), false)); break; // BINFLOAT
        case 0x58: this.push(this.text(this.u32())); break; // BINUNICODE
        case 0x8c: this.push(this.text(this.u8())); break; // SHORT_BINUNICODE
        case 0x8d: this.push(this.text(this.u64())); break; // BINUNICODE8
        case 0x54: this.push(this.latin1(this.u32())); break; // BINSTRING
        case 0x55: this.push(this.latin1(this.u8())); break; // SHORT_BINSTRING
        case 0x42: this.push(this.take(this.u32()).slice()); break; // BINBYTES
        case 0x43: this.push(this.take(this.u8()).slice()); break; // SHORT_BINBYTES
        case 0x74: this.push(this.popMark()); break; // TUPLE
        case 0x85: this.push([this.pop()]); break; // TUPLE1
        case 0x86: { const b = this.pop(); this.push([this.pop(), b]); break; } // TUPLE2
        case 0x87: { const c = this.pop(); const b = this.pop(); this.push([this.pop(), b, c]); break; } // TUPLE3
        case 0x71: this.memo.set(this.u8(), this.top()); break; // BINPUT
        case 0x72: this.memo.set(this.u32(), this.top()); break; // LONG_BINPUT
        case 0x94: this.memo.set(this.memo.size, this.top()); break; // MEMOIZE
        case 0x68: this.push(this.recall(this.u8())); break; // BINGET
        case 0x6a: this.push(this.recall(this.u32())); break; // LONG_BINGET
        case 0x63: this.push(this.global(`${this.line()}.${this.line()}`)); break; // GLOBAL
        case 0x93: { const name = this.pop(); const module = this.pop(); this.push(this.global(`${String(module)}.${String(name)}`)); break; } // STACK_GLOBAL
        case 0x51: this.push(this.persistent(this.pop())); break; // BINPERSID
        case 0x52: { const args = this.pop(); this.push(this.call(this.pop(), args)); break; } // REDUCE
        case 0x62: this.build(); break; // BUILD
        case 0x73: { const value = this.pop(); const key = this.pop(); this.dict(this.top()).set(key, value); break; } // SETITEM
        case 0x75: this.setItems(); break; // SETITEMS
        case 0x61: { const value = this.pop(); this.list(this.top()).push(value); break; } // APPEND
        case 0x65: { const items = this.popMark(); this.list(this.top()).push(...items); break; } // APPENDS
        default:
          this.bad(`unsupported opcode 0x${opcode.toString(16)} at byte ${this.at - 1}`);
      }
      if (this.stack.length > MAX_STACK) this.bad("the pickle stack grows beyond any state dict's needs");
    }
  }

  private global(name: string): Global {
    if (!ACCEPTED_GLOBALS.has(name)) {
      fault("SFT5109", `${this.where}: refused to load global ${name}: checkpoint loading never executes code`, this.where, "this file is not a plain torch state dict; only load checkpoints from sources you trust");
    }
    return { kind: "global", name };
  }

  /** `('storage', StorageType, key, location, numel)` -> a storage reference. */
  private persistent(id: unknown): StorageRef {
    if (!Array.isArray(id) || id.length !== 5 || id[0] !== "storage") this.bad(`unexpected persistent id ${describe(id)}`);
    const [, type, key, , numel] = id;
    const dtype = isGlobal(type) ? dtypeOfTorchStorage(type.name.slice("torch.".length)) : undefined;
    if (dtype === undefined) this.bad(`persistent id names ${describe(type)}, not a torch storage type`);
    if (typeof key !== "string" || typeof numel !== "number" || !Number.isInteger(numel) || numel < 0) this.bad(`malformed storage id ${describe(id)}`);
    return { kind: "storage", dtype, key, numel };
  }

  private call(callable: unknown, args: unknown): unknown {
    if (!isGlobal(callable) || !Array.isArray(args)) return this.bad(`REDUCE on ${describe(callable)}`);
    switch (callable.name) {
      case "collections.OrderedDict":
        if (args.length !== 0) this.bad("OrderedDict built from arguments");
        return new Map();
      case "torch._utils._rebuild_tensor_v2":
        return this.tensor(args);
      case "torch._utils._rebuild_parameter":
        if (!isTensor(args[0])) this.bad("_rebuild_parameter without a tensor");
        return args[0];
      default:
        return this.bad(`${callable.name} is not callable here`);
    }
  }

  /** `(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])`. */
  private tensor(args: unknown[]): TensorRef {
    const [storage, offset, shape, stride] = args;
    const isStorage = typeof storage === "object" && storage !== null && (storage as StorageRef).kind === "storage";
    if (!isStorage || !isCount(offset) || !isCounts(shape) || !isCounts(stride) || shape.length !== stride.length) {
      this.bad(`malformed _rebuild_tensor_v2 arguments ${describe(args)}`);
    }
    return { kind: "tensor", storage: storage as StorageRef, offset, shape, stride };
  }

  /** BUILD sets an object's state; a state dict's OrderedDict carries `_metadata`, which is not needed. */
  private build(): void {
    this.pop();
    if (!(this.top() instanceof Map)) this.bad(`BUILD on ${describe(this.top())}`);
  }

  private setItems(): void {
    const items = this.popMark();
    const dict = this.dict(this.top());
    if (items.length % 2 !== 0) this.bad("SETITEMS with an odd number of items");
    for (let i = 0; i < items.length; i += 2) dict.set(items[i], items[i + 1]);
  }

  private dict(value: unknown): Map<unknown, unknown> {
    if (!(value instanceof Map)) this.bad(`expected a dict, found ${describe(value)}`);
    return value;
  }

  private list(value: unknown): unknown[] {
    if (!Array.isArray(value)) this.bad(`expected a list, found ${describe(value)}`);
    return value;
  }

  private recall(index: number): unknown {
    if (!this.memo.has(index)) this.bad(`memo entry ${index} was never stored`);
    return this.memo.get(index);
  }

  private push(value: unknown): void {
    this.stack.push(value);
  }

  private pop(): unknown {
    if (this.stack.length === 0 || this.stack[this.stack.length - 1] === MARK) this.bad("the pickle stack underflows");
    return this.stack.pop();
  }

  private top(): unknown {
    if (this.stack.length === 0) this.bad("the pickle stack is empty");
    return this.stack[this.stack.length - 1];
  }

  private popMark(): unknown[] {
    const mark = this.marks.pop();
    if (mark === undefined) this.bad("a MARK is missing");
    const items = this.stack.splice(mark);
    return items.slice(1);
  }

  private u8(): number {
    return this.view.getUint8(this.skip(1));
  }

  private u32(): number {
    return this.view.getUint32(this.skip(4), true);
  }

  private u64(): number {
    const value = this.view.getBigUint64(this.skip(8), true);
    if (value > BigInt(this.bytes.length)) this.bad("a length runs past the end");
    return Number(value);
  }

  /** Little-endian two's complement integer of `n` bytes. */
  private long(n: number): number {
    const bytes = this.take(n);
    let value = 0n;
    for (let i = n - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[i]);
    if (n > 0 && bytes[n - 1] & 0x80) value -= 1n << BigInt(8 * n);
    if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) this.bad("an integer exceeds 2^53");
    return Number(value);
  }

  private text(n: number): string {
    return new TextDecoder("utf-8", { fatal: false }).decode(this.take(n));
  }

  private latin1(n: number): string {
    return String.fromCharCode(...this.take(n));
  }

  /** A newline-terminated line (GLOBAL's operands). */
  private line(): string {
    const end = this.bytes.indexOf(0x0a, this.at);
    if (end < 0) this.bad("a GLOBAL name is not terminated");
    const text = new TextDecoder().decode(this.bytes.subarray(this.at, end));
    this.at = end + 1;
    return text;
  }

  private take(n: number): Uint8Array {
    return this.bytes.subarray(this.skip(n), this.at);
  }

  /** Advances by `n` bytes and returns where they start. */
  private skip(n: number): number {
    if (this.at + n > this.bytes.length) this.bad("the pickle ends in the middle of an instruction (truncated file?)");
    const start = this.at;
    this.at += n;
    return start;
  }

  private bad(why: string): never {
    fault("SFT5110", `${this.where} is not a readable torch state dict: ${why}`, this.where, "re-save the checkpoint with torch.save(model.state_dict(), ...)");
  }
}

function isGlobal(value: unknown): value is Global {
  return typeof value === "object" && value !== null && (value as Global).kind === "global";
}

export function isTensor(value: unknown): value is TensorRef {
  return typeof value === "object" && value !== null && (value as TensorRef).kind === "tensor";
}

function isCount(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 0;
}

function isCounts(value: unknown): value is number[] {
  return Array.isArray(value) && value.every(isCount);
}

/** A short description of a value for messages. */
function describe(value: unknown): string {
  if (isGlobal(value)) return value.name;
  if (value instanceof Map) return "a dict";
  const text = JSON.stringify(value, (_k, v) => (v instanceof Map ? "{dict}" : v));
  return text === undefined ? String(value) : text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
