/**
 * llama2.c's tokenizer (run.c encode/decode, ported exactly): a leading space token, UTF-8
 * characters looked up whole or split into byte tokens (id = byte + 3), then repeatedly the
 * adjacent pair whose concatenation is in the vocabulary with the highest score is merged.
 */
import type { Llama2cTokenizerSpec } from '@ie/format';
import { PieceStreamDecoder, decodeAll, pieceTable, type PieceTable } from './pieces.js';
import { longestPiece } from './text-bound.js';
import type { StreamDecoder, Tokenizer } from './types.js';

export class Llama2cTokenizer implements Tokenizer {
  readonly kind = 'llama2c';
  readonly vocabSize: number;
  readonly stopTokens: ReadonlySet<number>;
  /** A piece's bytes: at least as many as the code units of the text it stands for. */
  readonly maxCharsPerToken: number;
  private readonly table: PieceTable;
  private readonly scores: readonly number[];
  private readonly latin1: string[];

  constructor(
    spec: Llama2cTokenizerSpec,
    readonly bosId: number,
    readonly eosId: number,
  ) {
    this.vocabSize = spec.pieces.length;
    this.table = pieceTable(spec.pieces, spec.raw_pieces, ' ', new Set([bosId, eosId]));
    this.scores = spec.scores;
    // Lookups use a piece's own bytes ("<0x0A>" is looked up as that text, as run.c does).
    this.latin1 = spec.pieces.map((p, i) =>
      spec.raw_pieces?.[String(i)] !== undefined
        ? Buffer.from(spec.raw_pieces[String(i)], 'base64').toString('latin1')
        : Buffer.from(p, 'utf8').toString('latin1'),
    );
    this.maxCharsPerToken = longestPiece(this.latin1);
    // run.c stops when the model samples BOS (its stories are separated by BOS).
    this.stopTokens = new Set([eosId, bosId]);
  }

  private find(key: string): number {
    return this.table.lookup.get(key) ?? -1;
  }

  encode(text: string, options: { bos?: boolean } = {}): number[] {
    const tokens: number[] = [];
    if (options.bos ?? true) tokens.push(this.bosId);
    const bytes = Buffer.from(text, 'utf8');
    if (bytes.length > 0) {
      const space = this.find(' ');
      if (space >= 0) tokens.push(space);
    }
    let buf: number[] = [];
    for (let i = 0; i < bytes.length; i++) {
      const c = bytes[i];
      if ((c & 0xc0) !== 0x80) buf = [];
      buf.push(c);
      const next = i + 1 < bytes.length ? bytes[i + 1] : 0;
      if ((next & 0xc0) === 0x80 && buf.length < 4) continue;
      const id = this.find(Buffer.from(buf).toString('latin1'));
      if (id !== -1) tokens.push(id);
      else for (const b of buf) tokens.push(b + 3);
      buf = [];
    }
    return this.merge(tokens);
  }

  /**
   * run.c's merge loop — repeatedly the adjacent pair with the highest score (the leftmost on a
   * tie) becomes its concatenation — in O(n log n): candidate pairs in a heap, the sequence as a
   * linked list, stale candidates skipped when popped (run.c rescans the whole sequence per merge,
   * which is quadratic: 30 s for 32K characters).
   */
  private merge(tokens: number[]): number[] {
    const n = tokens.length;
    if (n < 2) return tokens;
    const tok = Int32Array.from(tokens);
    const next = new Int32Array(n);
    const prev = new Int32Array(n);
    const alive = new Uint8Array(n).fill(1);
    for (let i = 0; i < n; i++) {
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
    }
    // Heap of candidate merges: (score, left node, the pair's ids when pushed, the merged id).
    const heap: Array<{ score: number; left: number; a: number; b: number; id: number }> = [];
    const before = (x: (typeof heap)[number], y: (typeof heap)[number]) => x.score > y.score || (x.score === y.score && x.left < y.left);
    const push = (left: number) => {
      const right = next[left];
      if (left < 0 || right < 0) return;
      const id = this.find(this.latin1[tok[left]] + this.latin1[tok[right]]);
      if (id === -1) return;
      const e = { score: this.scores[id], left, a: tok[left], b: tok[right], id };
      heap.push(e);
      for (let k = heap.length - 1; k > 0; ) {
        const p = (k - 1) >> 1;
        if (!before(heap[k], heap[p])) break;
        [heap[k], heap[p]] = [heap[p], heap[k]];
        k = p;
      }
    };
    const pop = () => {
      const top = heap[0];
      const last = heap.pop() as (typeof heap)[number];
      if (heap.length > 0) {
        heap[0] = last;
        for (let k = 0; ; ) {
          const l = 2 * k + 1;
          const r = l + 1;
          let m = k;
          if (l < heap.length && before(heap[l], heap[m])) m = l;
          if (r < heap.length && before(heap[r], heap[m])) m = r;
          if (m === k) break;
          [heap[k], heap[m]] = [heap[m], heap[k]];
          k = m;
        }
      }
      return top;
    };
    for (let i = 0; i < n - 1; i++) push(i);
    while (heap.length > 0) {
      const e = pop();
      const right = next[e.left];
      // Stale: the left node was merged away, or either side changed since the pair was pushed.
      if (!alive[e.left] || right < 0 || tok[e.left] !== e.a || tok[right] !== e.b) continue;
      tok[e.left] = e.id;
      alive[right] = 0;
      next[e.left] = next[right];
      if (next[right] >= 0) prev[next[right]] = e.left;
      push(prev[e.left]);
      push(e.left);
    }
    const out: number[] = [];
    for (let i = 0; i >= 0; i = next[i]) out.push(tok[i]);
    return out;
  }

  /** run.c matches no control token from text, so ordinary text is encode()'s without BOS. */
  encodeOrdinary(text: string): number[] {
    return this.encode(text, { bos: false });
  }

  decode(ids: readonly number[]): string {
    return decodeAll(this.table, this.bosId, ids);
  }

  streamDecoder(prev = -1): StreamDecoder {
    return new PieceStreamDecoder(this.table, this.bosId, prev);
  }

  tokenBytes(): readonly Uint8Array[] {
    return this.table.bytes;
  }
}
