/**
 * Property-based hardening: thousands of corrupted IEBIN, safetensors, GGUF and llama2.c
 * inputs. Every one must either parse or fail with the format's typed error and a known
 * code — never another exception (a crash), never a hang, never an allocation the file
 * cannot back (those would surface as RangeError or run out of memory).
 */
import fc from 'fast-check';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildGguf, llamaKv } from '@ie/testing';
import { exportIebin } from './export-iebin.js';
import { FORMAT_ERROR_CODES, type FormatError, GgufError, IebinError, Llama2cError, SafetensorsError } from './errors.js';
import { parseGguf } from './gguf.js';
import { expectedTensors } from './llama.js';
import { parseLlama2cHeader, parseLlama2cTokenizer } from './llama2c.js';
import { IebinReader } from './reader.js';
import { SAFETENSORS_DTYPE_BYTES, parseSafetensors } from './safetensors.js';
import { SYNTH_PRESETS, synthModel, synthTensorValues, synthVocabulary } from './synth.js';

const RUNS = Number(process.env.IE_FUZZ_RUNS ?? 1500);
const codes = new Set(Object.keys(FORMAT_ERROR_CODES));

/** Runs `f`; passes when it returns or throws `Cls` with a known code. Returns the code or 'ok'. */
function typed(Cls: typeof FormatError, f: () => unknown): string {
  try {
    f();
    return 'ok';
  } catch (e) {
    if (!(e instanceof Cls)) throw new Error(`expected ${Cls.name}, got ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
    if (!codes.has(e.code)) throw new Error(`unknown code ${e.code}`);
    return e.code;
  }
}

/** Awkward values for any JSON slot. */
const nasty = fc.oneof(
  fc.constantFrom(
    null,
    true,
    false,
    0,
    -1,
    1,
    63,
    64,
    65,
    2 ** 31,
    2 ** 32,
    2 ** 53,
    2 ** 53 + 2,
    2 ** 64,
    1e308,
    -1e308,
    0.5,
    -0.0,
    '',
    'f32',
    'q4',
    'row_major',
    '../x',
    [],
    {},
    [0],
    [1, 1, 1, 1, 1],
  ),
  fc.integer(),
  fc.double({ noNaN: true }),
  fc.string({ maxLength: 12 }),
  fc.array(fc.integer({ min: -2, max: 2 ** 20 }), { maxLength: 6 }),
);

interface Path {
  get: () => unknown;
  set: (v: unknown) => void;
  del: () => void;
}

/** Every slot of a JSON value, skipping the long tokenizer arrays' interiors. */
function paths(root: unknown): Array<(o: any) => Path> {
  const out: Array<(o: any) => Path> = [];
  const walk = (v: unknown, keys: Array<string | number>) => {
    if (keys.length) {
      const ks = [...keys];
      out.push((o) => {
        const parent = ks.slice(0, -1).reduce((a: any, k) => a?.[k], o);
        const last = ks[ks.length - 1];
        return {
          get: () => parent?.[last],
          set: (x) => {
            if (parent && typeof parent === 'object') parent[last] = x;
          },
          del: () => {
            if (!parent || typeof parent !== 'object') return;
            if (Array.isArray(parent)) parent.splice(last as number, 1);
            else delete parent[last];
          },
        };
      });
    }
    if (Array.isArray(v)) v.slice(0, keys[0] === 'tokenizer' ? 3 : v.length).forEach((x, i) => walk(x, [...keys, i]));
    else if (v && typeof v === 'object') Object.entries(v).forEach(([k, x]) => walk(x, [...keys, k]));
  };
  walk(root, []);
  return out;
}

describe('fuzz: IEBIN headers', () => {
  let json: string;
  let bin: Uint8Array;
  beforeAll(async () => {
    const d = mkdtempSync(join(tmpdir(), 'ie-fuzz-'));
    await exportIebin(synthModel('tiny', { seed: 1 }), d, { converter: 'fuzz' });
    json = readFileSync(join(d, 'model.ie.json'), 'utf8');
    const b = readFileSync(join(d, 'model.ie.bin'));
    bin = new Uint8Array(b.length);
    bin.set(b);
  });

  it(`${RUNS} mutated headers parse or fail with IebinError`, () => {
    const slots = paths(JSON.parse(json));
    const seen = new Map<string, number>();
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.nat(slots.length - 1), nasty, fc.boolean()), { minLength: 1, maxLength: 3 }), (muts) => {
        const h = JSON.parse(json);
        for (const [i, v, del] of muts) {
          const p = slots[i](h);
          if (del) p.del();
          else p.set(v);
        }
        const code = typed(IebinError, () => IebinReader.fromBytes(JSON.stringify(h), bin));
        seen.set(code, (seen.get(code) ?? 0) + 1);
      }),
      { numRuns: RUNS, seed: 42 },
    );
    // The corpus reaches many distinct checks, not one early exit.
    expect(seen.size).toBeGreaterThan(10);
  });

  it('truncated or NaN-bearing header text fails with IEBIN_HEADER_NOT_JSON', () => {
    fc.assert(
      fc.property(fc.nat(json.trimEnd().length - 1), fc.boolean(), (cut, nan) => {
        const text = nan ? json.replace(/"bytes":\d+/, '"bytes":NaN') : json.slice(0, cut);
        expect(typed(IebinError, () => IebinReader.fromBytes(text, bin))).toBe('IEBIN_HEADER_NOT_JSON');
      }),
      { numRuns: 300, seed: 7 },
    );
  });
});

describe('fuzz: safetensors', () => {
  const dtypes = [...Object.keys(SAFETENSORS_DTYPE_BYTES), 'F4', 'f32', ''];
  const entry = fc.record({
    dtype: fc.constantFrom(...dtypes),
    shape: fc.oneof(fc.array(fc.integer({ min: 0, max: 70 }), { maxLength: 3 }), fc.array(nasty, { maxLength: 3 }), nasty),
    data_offsets: fc.oneof(fc.tuple(fc.nat(600), fc.nat(600)), fc.array(nasty, { maxLength: 3 }), nasty),
  });
  const header = fc.dictionary(fc.string({ minLength: 1, maxLength: 8 }), fc.oneof(entry, nasty), { maxKeys: 5 });

  it(`${RUNS} generated files parse or fail with SafetensorsError`, () => {
    const seen = new Set<string>();
    fc.assert(
      fc.property(
        header,
        fc.nat(700),
        fc.oneof(fc.constant(0n), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })),
        fc.nat(100),
        (h, dataLen, lenOverride, cut) => {
          const text = Buffer.from(JSON.stringify(h));
          const prefix = Buffer.alloc(8);
          prefix.writeBigUInt64LE(lenOverride === 0n ? BigInt(text.length) : lenOverride);
          let file = Buffer.concat([prefix, text, Buffer.alloc(dataLen, 0x5a)]);
          if (cut < 10) file = file.subarray(0, Math.floor((file.length * cut) / 10));
          const code = typed(SafetensorsError, () => {
            const p = parseSafetensors(new Uint8Array(file));
            for (const e of p.entries) {
              // What parses is safe to read: in the file, sized by dtype x shape.
              expect(e.end).toBeLessThanOrEqual(file.length);
              expect(e.end - e.begin).toBe(e.shape.reduce((a, b) => a * b, 1) * SAFETENSORS_DTYPE_BYTES[e.dtype]);
            }
          });
          seen.add(code);
        },
      ),
      { numRuns: RUNS, seed: 43 },
    );
    expect(seen.size).toBeGreaterThan(5);
  });
});

describe('fuzz: GGUF', () => {
  const c = { ...SYNTH_PRESETS.tiny.config, vocab_size: 300, n_layers: 1, ffn_dim: 64 };
  const v = synthVocabulary(300);
  const good = buildGguf(
    llamaKv(c, v.pieces, v.types),
    expectedTensors(c)
      .slice(0, 4)
      .map((t, i) => ({ name: t.name, ne: [...t.shape].reverse(), type: 0, data: new Uint8Array(synthTensorValues(c, 1, i).buffer) })),
  );
  const headerEnd = parseGguf(good, good.length, 'g').dataOffset;
  const special = fc.constantFrom(
    0n,
    1n,
    31n,
    32n,
    0xffffffffn,
    1n << 32n,
    1n << 40n,
    1n << 62n,
    (1n << 64n) - 1n,
    BigInt(good.length),
    BigInt(good.length + 1),
  );

  it(`${RUNS} corrupted files parse or fail with GgufError`, () => {
    const seen = new Set<string>();
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.tuple(fc.constant('byte' as const), fc.nat(headerEnd - 1), fc.integer({ min: 0, max: 255 })),
            fc.tuple(fc.constant('u64' as const), fc.nat(headerEnd - 8), special),
          ),
          { minLength: 1, maxLength: 4 },
        ),
        fc.option(fc.nat(good.length), { nil: undefined }),
        (muts, truncate) => {
          const b = good.slice(0, truncate ?? good.length);
          const dv = new DataView(b.buffer);
          for (const [kind, at, val] of muts) {
            if (kind === 'byte' && at < b.length) b[at] = val as number;
            if (kind === 'u64' && at + 8 <= b.length) dv.setBigUint64(at, val as bigint, true);
          }
          seen.add(typed(GgufError, () => parseGguf(b, b.length, 'fuzz.gguf')));
        },
      ),
      { numRuns: RUNS, seed: 44 },
    );
    expect(seen.size).toBeGreaterThan(6);
  });
});

describe('fuzz: llama2.c', () => {
  it('random headers and file sizes parse or fail with Llama2cError', () => {
    fc.assert(
      fc.property(fc.array(fc.integer(), { minLength: 7, maxLength: 7 }), fc.nat(1 << 30), (ints, size) => {
        typed(Llama2cError, () => parseLlama2cHeader(new Uint8Array(new Int32Array(ints).buffer), size, 'm.bin'));
      }),
      { numRuns: 500, seed: 45 },
    );
  });

  it('random tokenizer bytes parse or fail with Llama2cError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.integer({ min: 1, max: 1 << 24 }), (bytes, vocab) => {
        typed(Llama2cError, () => parseLlama2cTokenizer(bytes, vocab, 'tok.bin'));
      }),
      { numRuns: 500, seed: 46 },
    );
  });
});
