/**
 * Tokenizers whose vocabulary is a list of pieces with scores (llama2.c's tokenizer.bin and
 * SentencePiece vocabularies from GGUF): piece bytes, byte-fallback tokens, and a streaming
 * decoder that works on bytes so multi-byte characters are never split.
 */
import type { StreamDecoder } from './types.js';

const BYTE_PIECE = /^<0x([0-9A-Fa-f]{2})>$/;

export interface PieceTable {
  /** Raw bytes of each piece as the model prints it (spaces as 0x20, byte tokens as their byte). */
  bytes: Uint8Array[];
  /** Piece text (latin1 of its raw bytes) -> id, for lookups during encoding. */
  lookup: Map<string, number>;
  /** Byte value -> id of its `<0xHH>` token (-1 when absent). */
  byteToken: Int32Array;
}

/** Builds the table; `spaceMark` is the character the vocabulary uses for spaces (U+2581 in SentencePiece, ' ' in llama2.c). */
export function pieceTable(
  pieces: readonly string[],
  raw: Record<string, string> | undefined,
  spaceMark: string,
  controlIds: ReadonlySet<number>,
): PieceTable {
  const bytes: Uint8Array[] = [];
  const lookup = new Map<string, number>();
  const byteToken = new Int32Array(256).fill(-1);
  const enc = new TextEncoder();
  pieces.forEach((p, id) => {
    const rawB = raw?.[String(id)];
    const pieceBytes = rawB !== undefined ? new Uint8Array(Buffer.from(rawB, 'base64')) : enc.encode(p);
    const key = Buffer.from(pieceBytes).toString('latin1');
    if (!lookup.has(key)) lookup.set(key, id);
    const m = BYTE_PIECE.exec(p);
    if (m) {
      const b = Number.parseInt(m[1], 16);
      if (byteToken[b] === -1) byteToken[b] = id;
      bytes.push(Uint8Array.of(b));
    } else if (controlIds.has(id)) {
      bytes.push(new Uint8Array(0));
    } else {
      bytes.push(spaceMark === ' ' ? pieceBytes : enc.encode(p.replaceAll(spaceMark, ' ')));
    }
  });
  return { bytes, lookup, byteToken };
}

/**
 * Streaming decode over piece bytes: a piece right after BOS loses its leading space (as
 * llama2.c and SentencePiece print it), and bytes are released only as whole UTF-8 characters.
 */
export class PieceStreamDecoder implements StreamDecoder {
  // ignoreBOM: a U+FEFF the model writes is text (run.c and llama.cpp print it), not a byte-order mark.
  private readonly utf8 = new TextDecoder('utf-8', { fatal: false, ignoreBOM: true });

  /** `prev`: the token before the first pushed one (-1: none, the start of the text). */
  constructor(
    private readonly table: PieceTable,
    private readonly bosId: number,
    private prev = -1,
  ) {}

  push(token: number): string {
    let b = this.table.bytes[token] ?? new Uint8Array(0);
    if ((this.prev === this.bosId || this.prev === -1) && b.length > 0 && b[0] === 0x20) b = b.subarray(1);
    this.prev = token;
    return this.utf8.decode(b, { stream: true });
  }

  flush(): string {
    return this.utf8.decode();
  }
}

export function decodeAll(table: PieceTable, bosId: number, ids: readonly number[]): string {
  const d = new PieceStreamDecoder(table, bosId);
  let s = '';
  for (const id of ids) s += d.push(id);
  return s + d.flush();
}
