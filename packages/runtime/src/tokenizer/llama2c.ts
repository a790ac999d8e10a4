/**
 * llama2.c's tokenizer (run.c encode/decode, ported exactly): a leading space token, UTF-8
 * characters looked up whole or split into byte tokens (id = byte + 3), then repeatedly the
 * adjacent pair whose concatenation is in the vocabulary with the highest score is merged.
 */
import type { Llama2cTokenizerSpec } from '@ie/format';
import { PieceStreamDecoder, decodeAll, pieceTable, type PieceTable } from './pieces.js';
import type { StreamDecoder, Tokenizer } from './types.js';

export class Llama2cTokenizer implements Tokenizer {
  readonly kind = 'llama2c';
  readonly vocabSize: number;
  readonly stopTokens: ReadonlySet<number>;
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
    this.latin1 = spec.pieces.map((p, i) => (spec.raw_pieces?.[String(i)] !== undefined ? Buffer.from(spec.raw_pieces[String(i)], 'base64').toString('latin1') : Buffer.from(p, 'utf8').toString('latin1')));
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
    for (;;) {
      let bestScore = -1e10;
      let bestId = -1;
      let bestIdx = -1;
      for (let i = 0; i < tokens.length - 1; i++) {
        const id = this.find(this.latin1[tokens[i]] + this.latin1[tokens[i + 1]]);
        if (id !== -1 && this.scores[id] > bestScore) {
          bestScore = this.scores[id];
          bestId = id;
          bestIdx = i;
        }
      }
      if (bestIdx === -1) break;
      tokens.splice(bestIdx, 2, bestId);
    }
    return tokens;
  }

  decode(ids: readonly number[]): string {
    return decodeAll(this.table, this.bosId, ids);
  }

  streamDecoder(prev = -1): StreamDecoder {
    return new PieceStreamDecoder(this.table, this.bosId, prev);
  }
}
