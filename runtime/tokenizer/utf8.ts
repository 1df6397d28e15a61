// UTF-8 helpers shared by the tokenizers: encoding one code point, byte lengths, and the
// byte-to-text rule SentencePiece applies to byte-fallback pieces.

const encoder = new TextEncoder();

export function utf8Bytes(text: string): Uint8Array {
  return encoder.encode(text);
}

export function utf8Length(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c < 0xdc00 && i + 1 < text.length) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/** Number of UTF-16 code units of the code point at `text[i]`. */
export function charLength(text: string, i: number): number {
  const c = text.charCodeAt(i);
  if (c >= 0xd800 && c < 0xdc00 && i + 1 < text.length) {
    const d = text.charCodeAt(i + 1);
    if (d >= 0xdc00 && d < 0xe000) return 2;
  }
  return 1;
}

/** Replaces lone surrogates with U+FFFD, as converting the text to UTF-8 does. */
export function wellFormed(text: string): string {
  return /[\ud800-\udfff]/.test(text) ? new TextDecoder().decode(encoder.encode(text)) : text;
}

/** Expected length of the UTF-8 sequence a lead byte starts (1 for bytes that start none). */
function sequenceLength(lead: number): number {
  if ((lead & 0xe0) === 0xc0) return 2;
  if ((lead & 0xf0) === 0xe0) return 3;
  if ((lead & 0xf8) === 0xf0) return 4;
  return 1;
}

const isTrail = (b: number) => (b & 0xc0) === 0x80;

/**
 * Decodes bytes the way SentencePiece turns byte pieces into text: each valid character is kept,
 * each byte that does not start a valid character becomes U+FFFD on its own. Unless `final`, a
 * trailing sequence too short to judge is left undecoded; `consumed` says how far decoding got.
 */
export function decodeBytesLikeSentencePiece(bytes: ArrayLike<number>, final: boolean): { text: string; consumed: number } {
  let text = "";
  let i = 0;
  while (i < bytes.length) {
    const n = sequenceLength(bytes[i]);
    if (i + n > bytes.length && !final) break;
    let cp = -1;
    if (n === 1) cp = bytes[i] < 0x80 ? bytes[i] : -1;
    else if (i + n <= bytes.length) {
      let ok = true;
      cp = bytes[i] & (n === 2 ? 0x1f : n === 3 ? 0x0f : 0x07);
      for (let k = 1; k < n; k++) {
        ok &&= isTrail(bytes[i + k]);
        cp = (cp << 6) | (bytes[i + k] & 0x3f);
      }
      const min = n === 2 ? 0x80 : n === 3 ? 0x800 : 0x10000;
      const valid = cp < 0xd800 || (cp >= 0xe000 && cp <= 0x10ffff);
      if (!ok || cp < min || !valid) cp = -1;
    }
    if (cp < 0) {
      text += "\ufffd";
      i += 1;
    } else {
      text += String.fromCodePoint(cp);
      i += n;
    }
  }
  return { text, consumed: i };
}
