/**
 * SentencePiece-style vocabularies as GGUF carries them (`tokenizer.ggml.model == "llama"`),
 * encoded as llama.cpp's SPM tokenizer does: spaces become U+2581 (with a leading one when
 * add_space_prefix), the text splits into UTF-8 characters, and adjacent symbols merge
 * best-score-first (ties: leftmost) while the merged text is a piece; what remains outside the
 * vocabulary falls back to `<0xHH>` byte tokens.
 */
import type { SpmTokenizerSpec } from '@ie/format';
import { PieceStreamDecoder, decodeAll, pieceTable, type PieceTable } from './pieces.js';
import { longestPiece } from './text-bound.js';
import type { StreamDecoder, Tokenizer } from './types.js';

const CONTROL = 3;

interface Sym {
  start: number;
  len: number;
  prev: number;
  next: number;
}
interface Bigram {
  left: number;
  right: number;
  score: number;
  size: number;
}

/** A binary max-heap of bigrams: higher score first, then the leftmost. */
class Heap {
  private readonly a: Bigram[] = [];
  private before(x: Bigram, y: Bigram): boolean {
    return x.score > y.score || (x.score === y.score && x.left < y.left);
  }
  push(b: Bigram): void {
    const a = this.a;
    a.push(b);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.before(a[i], a[p])) break;
      [a[i], a[p]] = [a[p], a[i]];
      i = p;
    }
  }
  pop(): Bigram | undefined {
    const a = this.a;
    if (a.length === 0) return undefined;
    const top = a[0];
    const last = a.pop() as Bigram;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && this.before(a[l], a[m])) m = l;
        if (r < a.length && this.before(a[r], a[m])) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m], a[i]];
        i = m;
      }
    }
    return top;
  }
}

export class SpmTokenizer implements Tokenizer {
  readonly kind = 'spm';
  readonly vocabSize: number;
  readonly stopTokens: ReadonlySet<number>;
  /** A piece's text stands for as many characters (U+2581 for one space); a byte piece for less than one. */
  readonly maxCharsPerToken: number;
  private readonly table: PieceTable;
  /** Piece text (UTF-8 as latin1, with U+2581) -> id, for merging. */
  private readonly byText = new Map<string, number>();

  constructor(
    private readonly spec: SpmTokenizerSpec,
    readonly bosId: number,
    readonly eosId: number,
    stopAtBos = false,
  ) {
    this.vocabSize = spec.pieces.length;
    const control = new Set<number>();
    spec.types.forEach((t, i) => t === CONTROL && control.add(i));
    control.add(bosId);
    control.add(eosId);
    this.table = pieceTable(spec.pieces, spec.raw_pieces, '\u2581', control);
    spec.pieces.forEach((p, i) => {
      // Only normal, user-defined and unknown pieces take part in merges; control and byte pieces do not.
      const t = spec.types[i];
      if ((t === 1 || t === 4) && !this.byText.has(p)) this.byText.set(p, i);
    });
    this.maxCharsPerToken = longestPiece(spec.pieces);
    // stopAtBos: a model that emits BOS has started a new document (llama2.c's run.c stops there).
    this.stopTokens = new Set(stopAtBos ? [eosId, bosId] : [eosId]);
  }

  encode(text: string, options: { bos?: boolean } = {}): number[] {
    const out: number[] = [];
    if (options.bos ?? this.spec.add_bos) out.push(this.bosId);
    if (text.length === 0) return out;
    const escaped = (this.spec.add_space_prefix ? ' ' : '') + text;
    const s = escaped.replaceAll(' ', '\u2581');
    const chars = Array.from(s);
    const syms: Sym[] = [];
    let at = 0;
    for (let i = 0; i < chars.length; i++) {
      syms.push({ start: at, len: chars[i].length, prev: i - 1, next: i + 1 < chars.length ? i + 1 : -1 });
      at += chars[i].length;
    }
    const heap = new Heap();
    const tryAdd = (left: number, right: number) => {
      if (left === -1 || right === -1) return;
      const t = s.slice(syms[left].start, syms[right].start + syms[right].len);
      const id = this.byText.get(t);
      if (id === undefined) return;
      heap.push({ left, right, score: this.spec.scores[id], size: t.length });
    };
    for (let i = 1; i < syms.length; i++) tryAdd(i - 1, i);
    for (let b = heap.pop(); b; b = heap.pop()) {
      const l = syms[b.left];
      const r = syms[b.right];
      // Stale: one side was merged away or grew since this bigram was queued.
      if (l.len === 0 || r.len === 0 || l.len + r.len !== b.size) continue;
      l.len += r.len;
      r.len = 0;
      l.next = r.next;
      if (r.next !== -1) syms[r.next].prev = b.left;
      tryAdd(l.prev, b.left);
      tryAdd(b.left, l.next);
    }
    for (let i = 0; i !== -1 && i < syms.length; i = syms[i].next) {
      const sym = syms[i];
      const t = s.slice(sym.start, sym.start + sym.len);
      const id = this.byText.get(t);
      if (id !== undefined) {
        out.push(id);
      } else {
        for (const byte of Buffer.from(t, 'utf8')) {
          const bt = this.table.byteToken[byte];
          out.push(bt >= 0 ? bt : this.spec.unk_id);
        }
      }
    }
    if (this.spec.add_eos) out.push(this.eosId);
    return out;
  }

  /** No piece is matched as a control token from text, so ordinary text is encode()'s without BOS. */
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
