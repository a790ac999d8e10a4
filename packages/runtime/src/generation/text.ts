/**
 * The text of a generation as it streams: tokens through the tokenizer's UTF-8 stream decoder
 * (characters split over tokens come out whole), then stop strings matched across pieces, with
 * a tail that could still grow into a stop string held back until it cannot.
 */
import type { StreamDecoder } from '../tokenizer/index.js';

export class TextStream {
  /** Text handed out so far. */
  text = '';
  private pending = '';
  private readonly maxStop: number;

  constructor(
    private readonly decoder: StreamDecoder,
    private readonly stop: readonly string[],
  ) {
    this.maxStop = stop.reduce((m, s) => Math.max(m, s.length), 0);
  }

  /**
   * The text `token` releases, whether a stop string ended the generation (the text stops before
   * it), and `decoded`: the characters the token itself decoded to (released now or later).
   */
  push(token: number): { text: string; stopped: boolean; decoded: number } {
    const own = this.decoder.push(token);
    this.pending += own;
    return { ...this.release(), decoded: own.length };
  }

  private release(): { text: string; stopped: boolean } {
    if (this.stop.length === 0) return this.emit(this.pending.length, false);
    const hay = this.text.slice(-this.maxStop) + this.pending;
    const at = Math.min(...this.stop.map((s) => hay.indexOf(s)).filter((i) => i >= 0));
    if (Number.isFinite(at)) return this.emit(Math.max(0, at - (hay.length - this.pending.length)), true);
    let hold = 0;
    for (const s of this.stop)
      for (let k = Math.min(s.length - 1, this.pending.length); k > hold; k--)
        if (s.startsWith(this.pending.slice(this.pending.length - k))) hold = k;
    return this.emit(this.pending.length - hold, false);
  }

  /** What is still held back (the decoder's incomplete bytes included), at the end of a generation not ended by a stop string. */
  flush(): string {
    const rest = this.pending + this.decoder.flush();
    this.pending = '';
    this.text += rest;
    return rest;
  }

  /** Releases the first `n` pending characters; after a stop string, the rest is dropped. */
  private emit(n: number, stopped: boolean): { text: string; stopped: boolean } {
    const text = this.pending.slice(0, n);
    this.pending = stopped ? '' : this.pending.slice(n);
    this.text += text;
    return { text, stopped };
  }
}
