// Protocol-buffers wire format, just enough to read a SentencePiece ModelProto: one message level
// is decoded into its fields; a nested message is decoded by calling `decodeMessage` on its bytes.
// Malformed input (truncation, bad wire types, runaway varints) is reported as a value.

/** One field of a message. Varints keep both 32-bit halves so int32 -1 (ten bytes) reads back. */
export type ProtoField =
  | { number: number; wire: "varint"; lo: number; hi: number }
  | { number: number; wire: "fixed64"; bytes: Uint8Array }
  | { number: number; wire: "bytes"; bytes: Uint8Array }
  | { number: number; wire: "fixed32"; bytes: Uint8Array };

export type Decoded = { ok: true; fields: ProtoField[] } | { ok: false; error: string };

/** Decodes the fields of one message; nested messages stay as `bytes` fields. */
export function decodeMessage(buf: Uint8Array): Decoded {
  const fields: ProtoField[] = [];
  let pos = 0;
  const varint = (): { lo: number; hi: number } | string => {
    let lo = 0;
    let hi = 0;
    for (let i = 0; i < 10; i++) {
      if (pos >= buf.length) return `truncated varint at byte ${pos}`;
      const b = buf[pos++];
      if (i < 4) lo |= (b & 0x7f) << (7 * i);
      else if (i === 4) {
        lo |= (b & 0x0f) << 28;
        hi |= (b & 0x70) >> 4;
      } else hi |= (b & 0x7f) << (7 * i - 32);
      if ((b & 0x80) === 0) return { lo: lo >>> 0, hi: hi >>> 0 };
    }
    return `varint longer than 10 bytes at byte ${pos}`;
  };
  const take = (n: number, what: string): Uint8Array | string => {
    if (n < 0 || pos + n > buf.length) return `truncated ${what} at byte ${pos} (needs ${n} bytes, ${buf.length - pos} left)`;
    const out = buf.subarray(pos, pos + n);
    pos += n;
    return out;
  };
  while (pos < buf.length) {
    const start = pos;
    const key = varint();
    if (typeof key === "string") return { ok: false, error: key };
    const number = (key.lo >>> 3) + key.hi * 2 ** 29;
    if (number === 0) return { ok: false, error: `field number 0 at byte ${start}` };
    switch (key.lo & 7) {
      case 0: {
        const v = varint();
        if (typeof v === "string") return { ok: false, error: v };
        fields.push({ number, wire: "varint", ...v });
        break;
      }
      case 1: {
        const bytes = take(8, "fixed64");
        if (typeof bytes === "string") return { ok: false, error: bytes };
        fields.push({ number, wire: "fixed64", bytes });
        break;
      }
      case 2: {
        const len = varint();
        if (typeof len === "string") return { ok: false, error: len };
        if (len.hi !== 0) return { ok: false, error: `length too large at byte ${start}` };
        const bytes = take(len.lo, `field ${number}`);
        if (typeof bytes === "string") return { ok: false, error: bytes };
        fields.push({ number, wire: "bytes", bytes });
        break;
      }
      case 5: {
        const bytes = take(4, "fixed32");
        if (typeof bytes === "string") return { ok: false, error: bytes };
        fields.push({ number, wire: "fixed32", bytes });
        break;
      }
      default:
        return { ok: false, error: `unsupported wire type ${key.lo & 7} at byte ${start}` };
    }
  }
  return { ok: true, fields };
}

/** An int32/enum varint: protobuf sign-extends negatives to 64 bits, the low half is the value. */
export function int32Of(field: ProtoField): number | undefined {
  return field.wire === "varint" ? field.lo | 0 : undefined;
}

export function boolOf(field: ProtoField): boolean | undefined {
  return field.wire === "varint" ? field.lo !== 0 || field.hi !== 0 : undefined;
}

export function floatOf(field: ProtoField): number | undefined {
  if (field.wire !== "fixed32") return undefined;
  return new DataView(field.bytes.buffer, field.bytes.byteOffset, 4).getFloat32(0, true);
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** A `string` field; undefined when the wire type is wrong or the bytes are not UTF-8. */
export function stringOf(field: ProtoField): string | undefined {
  if (field.wire !== "bytes") return undefined;
  try {
    return utf8.decode(field.bytes);
  } catch {
    return undefined;
  }
}
