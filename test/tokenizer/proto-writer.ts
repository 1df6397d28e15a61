// A minimal protobuf writer for hand-made SentencePiece models in tests.

export function varint(n: number): number[] {
  const out: number[] = [];
  let v = BigInt.asUintN(64, BigInt(n));
  do {
    const b = Number(v & 0x7fn);
    v >>= 7n;
    out.push(v > 0n ? b | 0x80 : b);
  } while (v > 0n);
  return out;
}

export const bytesField = (num: number, payload: number[] | Uint8Array) => [...varint((num << 3) | 2), ...varint(payload.length), ...payload];
export const varintField = (num: number, value: number) => [...varint(num << 3), ...varint(value)];
export const floatField = (num: number, value: number) => [...varint((num << 3) | 5), ...new Uint8Array(new Float32Array([value]).buffer)];
export const text = (s: string) => Array.from(new TextEncoder().encode(s));

/** A ModelProto.SentencePiece: type 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte. */
export const piece = (s: string, type: number, score = 0) => bytesField(1, [...bytesField(1, text(s)), ...floatField(2, score), ...varintField(3, type)]);
