// Generated tokens as text while they are produced: the tokenizer's stream decoder (never half a
// UTF-8 character), special tokens left out, and stop strings. Text that might be the start of a
// stop string is held back until the next tokens decide, so a stop string is never printed; the
// text ends right before it.
import type { StreamDecoder, Tokenizer } from "../tokenizer/tokenizer.ts";

export class TextOutput {
  private readonly decoder: StreamDecoder;
  /** Decoded text not yet emitted (a possible stop-string start). */
  private pending = "";
  private emitted = "";
  private stoppedAt: string | null = null;

  constructor(
    tokenizer: Tokenizer,
    private readonly stops: readonly string[],
  ) {
    this.decoder = tokenizer.streamDecoder({ skipSpecial: true });
  }

  /** The stop string that ended the text, if one did. */
  get stop(): string | null {
    return this.stoppedAt;
  }

  /** All text emitted so far. */
  get text(): string {
    return this.emitted;
  }

  /** Adds one token; returns the text now safe to show. After a stop string, nothing more. */
  push(id: number): string {
    if (this.stoppedAt !== null) return "";
    this.pending += this.decoder.push(id);
    const found = this.firstStop();
    if (found) {
      this.stoppedAt = found.stop;
      return this.emit(this.pending.slice(0, found.at));
    }
    return this.emit(this.pending.slice(0, this.pending.length - this.heldBack()));
  }

  /** The rest of the text at the end of generation. */
  finish(): string {
    if (this.stoppedAt !== null) return "";
    this.pending += this.decoder.flush();
    const found = this.firstStop();
    if (found) this.stoppedAt = found.stop;
    return this.emit(found ? this.pending.slice(0, found.at) : this.pending);
  }

  private emit(text: string): string {
    this.pending = this.pending.slice(text.length);
    this.emitted += text;
    return text;
  }

  /** The earliest stop string in the pending text (the earliest-starting, then the longest). */
  private firstStop(): { stop: string; at: number } | null {
    let best: { stop: string; at: number } | null = null;
    for (const stop of this.stops) {
      const at = this.pending.indexOf(stop);
      if (at >= 0 && (!best || at < best.at || (at === best.at && stop.length > best.stop.length))) best = { stop, at };
    }
    return best;
  }

  /** Length of the longest pending suffix that begins some stop string. */
  private heldBack(): number {
    let held = 0;
    for (const stop of this.stops) {
      for (let n = Math.min(stop.length - 1, this.pending.length); n > held; n--) {
        if (this.pending.endsWith(stop.slice(0, n))) {
          held = n;
          break;
        }
      }
    }
    return held;
  }
}
