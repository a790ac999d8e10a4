/**
 * safetensors reader and writer. Format: u64 little-endian header length N, N bytes of
 * JSON ({name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}), then
 * the data; offsets are relative to the data start. The reader checks the header length
 * against a cap and the file, every entry's dtype x shape against its byte range, ranges
 * against the file, and, as the reference reader does, that the tensors fill the data section
 * exactly: contiguous from offset 0, no gaps, no overlaps, ending at the end of the file.
 */
import { basename, dirname } from 'node:path';
import { commitRename, createTempFile, discardTemp } from './safe-write.js';
import { SafetensorsError, type FormatErrorCode } from './errors.js';
import { jsonErrorPosition, type RandomAccessFile } from './file.js';
import type { FloatDtype } from './layout.js';

export const SAFETENSORS_DTYPE_BYTES: Record<string, number> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  F64: 8,
  I64: 8,
  U64: 8,
};
/** The safetensors dtypes a model's weights may have, and their IEBIN dtype. */
export const SAFETENSORS_FLOAT_DTYPES: Record<string, FloatDtype> = { F32: 'f32', F16: 'f16', BF16: 'bf16' };

export interface SafetensorsEntry {
  name: string;
  dtype: string;
  shape: number[];
  /** Absolute byte range in the file. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  entries: SafetensorsEntry[];
  metadata: Record<string, string>;
  dataOffset: number;
}

export interface SafetensorsLimits {
  maxHeaderBytes: number;
  maxTensors: number;
}
export const DEFAULT_SAFETENSORS_LIMITS: SafetensorsLimits = Object.freeze({ maxHeaderBytes: 100 * 1024 * 1024, maxTensors: 1 << 17 });

type SafetensorsFail = (code: FormatErrorCode, message: string, field?: string) => never;

/** Validates a safetensors header given its JSON bytes and the whole file's size. */
export function parseSafetensorsHeader(
  json: Uint8Array,
  fileSize: number,
  file: string,
  limits: SafetensorsLimits = DEFAULT_SAFETENSORS_LIMITS,
): SafetensorsHeader {
  const fail: SafetensorsFail = (code, message, field) => {
    throw new SafetensorsError(code, message, { file, field });
  };
  const dataOffset = 8 + json.length;
  const obj = parseHeaderObject(json, fail);
  const keys = Object.keys(obj);
  if (keys.length > limits.maxTensors + 1)
    fail('SAFETENSORS_TOO_MANY_TENSORS', `header lists ${keys.length} entries, more than the cap of ${limits.maxTensors}`);
  let metadata: Record<string, string> = {};
  const entries: SafetensorsEntry[] = [];
  const dataSize = fileSize - dataOffset;
  for (const name of keys) {
    const v = obj[name];
    if (name === '__metadata__') {
      if (typeof v !== 'object' || v === null || Array.isArray(v) || Object.values(v).some((x) => typeof x !== 'string'))
        fail('SAFETENSORS_BAD_ENTRY', '__metadata__ must map strings to strings', '__metadata__');
      metadata = v as Record<string, string>;
      continue;
    }
    entries.push(checkEntry(name, v, dataOffset, dataSize, fail));
  }
  checkContiguous(entries, dataOffset, fileSize, fail);
  return { entries, metadata, dataOffset };
}

/** The header's bytes as a JSON object; a failure says where, never what (the message must not quote the file's bytes). */
function parseHeaderObject(json: Uint8Array, fail: SafetensorsFail): Record<string, unknown> {
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(json));
  } catch (e) {
    fail(
      'SAFETENSORS_HEADER_NOT_JSON',
      e instanceof TypeError
        ? 'header is not valid UTF-8'
        : `header is not valid JSON (${jsonErrorPosition(e)} of the header, byte 8 of the file being its first)`,
    );
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail('SAFETENSORS_HEADER_NOT_JSON', 'header is not a JSON object');
  return raw as Record<string, unknown>;
}

/** One tensor's entry: a known dtype, at most 8 dims, data_offsets inside the data whose span is exactly dtype x shape (in BigInt). */
function checkEntry(name: string, v: unknown, dataOffset: number, dataSize: number, fail: SafetensorsFail): SafetensorsEntry {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail('SAFETENSORS_BAD_ENTRY', 'must be an object', name);
  const e = v as Record<string, unknown>;
  if (typeof e.dtype !== 'string' || !Object.hasOwn(SAFETENSORS_DTYPE_BYTES, e.dtype))
    fail('SAFETENSORS_BAD_DTYPE', `has dtype ${JSON.stringify(e.dtype)}`, `${name}.dtype`);
  const dtype = e.dtype as string;
  if (!Array.isArray(e.shape) || e.shape.length > 8)
    fail('SAFETENSORS_BAD_ENTRY', 'shape must be an array of at most 8 dims', `${name}.shape`);
  const shape = e.shape as unknown[];
  let elements = 1n;
  for (const d of shape) {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0)
      fail('SAFETENSORS_BAD_ENTRY', `shape has dim ${JSON.stringify(d)}`, `${name}.shape`);
    elements *= BigInt(d as number);
  }
  const offs = e.data_offsets;
  if (!Array.isArray(offs) || offs.length !== 2 || offs.some((o) => typeof o !== 'number' || !Number.isSafeInteger(o) || o < 0))
    fail('SAFETENSORS_BAD_ENTRY', 'data_offsets must be two non-negative integers', `${name}.data_offsets`);
  const [b, en] = offs as [number, number];
  if (en < b) fail('SAFETENSORS_BAD_ENTRY', `data_offsets [${b}, ${en}] end before they begin`, `${name}.data_offsets`);
  if (BigInt(en - b) !== elements * BigInt(SAFETENSORS_DTYPE_BYTES[dtype]))
    fail(
      'SAFETENSORS_SIZE_MISMATCH',
      `${dtype} ${JSON.stringify(shape)} takes ${elements * BigInt(SAFETENSORS_DTYPE_BYTES[dtype])} bytes, data_offsets span ${en - b}`,
      `${name}.data_offsets`,
    );
  if (en > dataSize)
    fail('SAFETENSORS_RANGE_OUT_OF_FILE', `data_offsets end at ${en}, past the ${dataSize} data bytes`, `${name}.data_offsets`);
  return { name, dtype, shape: shape as number[], begin: dataOffset + b, end: dataOffset + en };
}

/**
 * As the reference reader demands: in offset order the tensors start at 0, each where the
 * previous one ends, and the last ends where the file does. A header length off by one would
 * otherwise shift every tensor by a byte.
 */
function checkContiguous(entries: SafetensorsEntry[], dataOffset: number, fileSize: number, fail: SafetensorsFail): void {
  const sorted = [...entries].sort((x, y) => x.begin - y.begin || x.end - y.end);
  let at = dataOffset;
  for (const t of sorted) {
    if (t.begin < at)
      fail(
        'SAFETENSORS_OVERLAP',
        `${t.name} (data_offsets [${t.begin - dataOffset}, ${t.end - dataOffset}]) overlaps the tensor before it, which ends at ${at - dataOffset}`,
        `${t.name}.data_offsets`,
      );
    if (t.begin > at)
      fail(
        'SAFETENSORS_NOT_CONTIGUOUS',
        `${t.name} starts at ${t.begin - dataOffset}, leaving a gap of ${t.begin - at} bytes after ${at - dataOffset}; tensors must be contiguous from data offset 0`,
        `${t.name}.data_offsets`,
      );
    at = t.end;
  }
  if (at !== fileSize)
    fail(
      'SAFETENSORS_NOT_CONTIGUOUS',
      `the tensors end at data offset ${at - dataOffset}, but the file has ${fileSize - dataOffset} data bytes (is the header length right?)`,
      'data_offsets',
    );
}

/** Reads the length prefix and header of a safetensors file, checking both against the file size. */
export async function readSafetensorsHeader(
  f: RandomAccessFile,
  limits: SafetensorsLimits = DEFAULT_SAFETENSORS_LIMITS,
): Promise<SafetensorsHeader> {
  if (f.size < 8)
    throw new SafetensorsError('SAFETENSORS_TRUNCATED', `is ${f.size} bytes, too short for a safetensors header`, { file: f.path });
  const prefix = await f.read(0, 8);
  const n = new DataView(prefix.buffer).getBigUint64(0, true);
  if (n > BigInt(limits.maxHeaderBytes))
    throw new SafetensorsError('SAFETENSORS_HEADER_TOO_LARGE', `header length ${n} exceeds the cap of ${limits.maxHeaderBytes} bytes`, {
      file: f.path,
    });
  if (n > BigInt(f.size - 8))
    throw new SafetensorsError('SAFETENSORS_HEADER_TOO_LARGE', `header length ${n} exceeds the ${f.size - 8} bytes after the prefix`, {
      file: f.path,
    });
  return parseSafetensorsHeader(await f.read(8, Number(n)), f.size, f.path, limits);
}

/** Parses a whole in-memory safetensors file (tests, small tools). */
export function parseSafetensors(
  bytes: Uint8Array,
  file = '<memory>',
  limits: SafetensorsLimits = DEFAULT_SAFETENSORS_LIMITS,
): SafetensorsHeader {
  if (bytes.length < 8)
    throw new SafetensorsError('SAFETENSORS_TRUNCATED', `is ${bytes.length} bytes, too short for a safetensors header`, { file });
  const n = new DataView(bytes.buffer, bytes.byteOffset, 8).getBigUint64(0, true);
  if (n > BigInt(limits.maxHeaderBytes))
    throw new SafetensorsError('SAFETENSORS_HEADER_TOO_LARGE', `header length ${n} exceeds the cap of ${limits.maxHeaderBytes} bytes`, {
      file,
    });
  if (n > BigInt(bytes.length - 8))
    throw new SafetensorsError(
      'SAFETENSORS_HEADER_TOO_LARGE',
      `header length ${n} exceeds the ${bytes.length - 8} bytes after the prefix`,
      { file },
    );
  return parseSafetensorsHeader(bytes.subarray(8, 8 + Number(n)), bytes.length, file, limits);
}

export interface SafetensorsTensorSpec {
  name: string;
  dtype: string;
  shape: number[];
}

/**
 * Writes a safetensors file tensor by tensor. The header comes first, so every tensor's
 * name, dtype and shape are given up front; data then streams in that order, each tensor whole
 * or in pieces. Writes to a temporary name and renames at the end.
 */
export async function writeSafetensors(
  path: string,
  specs: SafetensorsTensorSpec[],
  data: (i: number) => Promise<Uint8Array | AsyncIterable<Uint8Array>> | Uint8Array | AsyncIterable<Uint8Array>,
  metadata: Record<string, string> = {},
): Promise<void> {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  let off = 0;
  for (const s of specs) {
    const n = s.shape.reduce((a, b) => a * b, 1) * SAFETENSORS_DTYPE_BYTES[s.dtype];
    header[s.name] = { dtype: s.dtype, shape: s.shape, data_offsets: [off, off + n] };
    off += n;
  }
  let json = JSON.stringify(header);
  // Pad with spaces so the data starts 8-byte aligned, as the reference writer does.
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const hb = Buffer.from(json, 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(hb.length));
  // An exclusive, unpredictable, symlink-refusing temporary name beside the target (safe-write.ts).
  const { path: tmp, handle: fh } = await createTempFile(dirname(path), basename(path));
  try {
    await fh.write(prefix);
    await fh.write(hb);
    for (let i = 0; i < specs.length; i++) {
      const d = await data(i);
      const want = specs[i].shape.reduce((a, x) => a * x, 1) * SAFETENSORS_DTYPE_BYTES[specs[i].dtype];
      let got = 0;
      for await (const b of d instanceof Uint8Array ? [d] : d) {
        got += b.length;
        if (got > want) break;
        await fh.write(b);
      }
      if (got !== want)
        throw new SafetensorsError(
          'SAFETENSORS_SIZE_MISMATCH',
          `${specs[i].name}: got ${got > want ? `more than ${want}` : got} bytes, expected ${want}`,
          { file: path },
        );
    }
    await fh.sync();
    await fh.close();
    await commitRename(tmp, path);
  } catch (e) {
    await fh.close().catch(() => undefined);
    await discardTemp(tmp);
    throw e;
  }
}
