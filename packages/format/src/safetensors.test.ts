import { describe, expect, it } from 'vitest';
import { SafetensorsError } from './errors.js';
import { parseSafetensorsHeader } from './safetensors.js';

/** The header's JSON bytes and the size of a file whose data section is `dataBytes` long. */
function header(obj: unknown, dataBytes: number): { json: Uint8Array; fileSize: number } {
  const json = new TextEncoder().encode(JSON.stringify(obj));
  return { json, fileSize: 8 + json.length + dataBytes };
}

/** The SafetensorsError parsing throws: code, field and the message after "file: field: ". */
function refusal(obj: unknown, dataBytes: number): { code: string; field: string | undefined; text: string } {
  const { json, fileSize } = header(obj, dataBytes);
  try {
    parseSafetensorsHeader(json, fileSize, 'm.safetensors');
  } catch (e) {
    if (!(e instanceof SafetensorsError)) throw e;
    return { code: e.code, field: e.field, text: e.message.slice(`m.safetensors: ${e.field ? `${e.field}: ` : ''}`.length) };
  }
  throw new Error('not refused');
}

describe('safetensors header', () => {
  it('gives each tensor its absolute byte range, and keeps __metadata__', () => {
    const obj = {
      __metadata__: { format: 'pt' },
      b: { dtype: 'BF16', shape: [3, 5], data_offsets: [24, 54] },
      a: { dtype: 'F32', shape: [2, 3], data_offsets: [0, 24] },
    };
    const { json, fileSize } = header(obj, 54);
    const h = parseSafetensorsHeader(json, fileSize, 'm.safetensors');
    const d = 8 + json.length;
    expect(h.dataOffset).toBe(d);
    expect(h.metadata).toEqual({ format: 'pt' });
    expect(h.entries).toEqual([
      { name: 'b', dtype: 'BF16', shape: [3, 5], begin: d + 24, end: d + 54 },
      { name: 'a', dtype: 'F32', shape: [2, 3], begin: d, end: d + 24 },
    ]);
  });

  it.each([
    [
      'a span that is not dtype x shape',
      { a: { dtype: 'F16', shape: [7, 3], data_offsets: [0, 40] } },
      40,
      'SAFETENSORS_SIZE_MISMATCH',
      'a.data_offsets',
      'F16 [7,3] takes 42 bytes, data_offsets span 40',
    ],
    [
      'overlapping tensors',
      { a: { dtype: 'U8', shape: [10], data_offsets: [0, 10] }, b: { dtype: 'U8', shape: [6], data_offsets: [8, 14] } },
      14,
      'SAFETENSORS_OVERLAP',
      'b.data_offsets',
      'b (data_offsets [8, 14]) overlaps the tensor before it, which ends at 10',
    ],
    [
      'a gap between tensors',
      { a: { dtype: 'U8', shape: [10], data_offsets: [0, 10] }, b: { dtype: 'U8', shape: [4], data_offsets: [13, 17] } },
      17,
      'SAFETENSORS_NOT_CONTIGUOUS',
      'b.data_offsets',
      'b starts at 13, leaving a gap of 3 bytes after 10; tensors must be contiguous from data offset 0',
    ],
    [
      'data past the last tensor',
      { a: { dtype: 'I32', shape: [5], data_offsets: [0, 20] } },
      23,
      'SAFETENSORS_NOT_CONTIGUOUS',
      'data_offsets',
      'the tensors end at data offset 20, but the file has 23 data bytes (is the header length right?)',
    ],
    [
      'a range past the file',
      { a: { dtype: 'I32', shape: [5], data_offsets: [0, 20] } },
      19,
      'SAFETENSORS_RANGE_OUT_OF_FILE',
      'a.data_offsets',
      'data_offsets end at 20, past the 19 data bytes',
    ],
    [
      'an unknown dtype',
      { a: { dtype: 'F128', shape: [1], data_offsets: [0, 16] } },
      16,
      'SAFETENSORS_BAD_DTYPE',
      'a.dtype',
      'has dtype "F128"',
    ],
    [
      'a dtype named like an Object property',
      { a: { dtype: 'constructor', shape: [1], data_offsets: [0, 1] } },
      1,
      'SAFETENSORS_BAD_DTYPE',
      'a.dtype',
      'has dtype "constructor"',
    ],
    [
      'a negative dim',
      { a: { dtype: 'U8', shape: [2, -3], data_offsets: [0, 6] } },
      6,
      'SAFETENSORS_BAD_ENTRY',
      'a.shape',
      'shape has dim -3',
    ],
    [
      'metadata that is not strings',
      { __metadata__: { n: 3 }, a: { dtype: 'U8', shape: [1], data_offsets: [0, 1] } },
      1,
      'SAFETENSORS_BAD_ENTRY',
      '__metadata__',
      '__metadata__ must map strings to strings',
    ],
    ['a header that is an array', [1, 2], 0, 'SAFETENSORS_HEADER_NOT_JSON', undefined, 'header is not a JSON object'],
  ])('refuses %s', (_n, obj, dataBytes, code, field, text) => {
    expect(refusal(obj, dataBytes)).toEqual({ code, field, text });
  });
});
