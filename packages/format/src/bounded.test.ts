/**
 * Bounded imports: hostile sizes are refused before anything is allocated or enumerated, only
 * regular files are read, safetensors data must fill its file exactly, and error messages say
 * where a file is wrong without quoting it. Each case asserts the typed code and that it is fast.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildGguf, llamaKv, type GgufTensorIn } from '@ie/testing';
import { FormatError, type FormatErrorCode } from './errors.js';
import { readRegularFile } from './file.js';
import { DEFAULT_GGUF_LIMITS, openGguf, parseGguf } from './gguf.js';
import { openHfDir, writeHfDir } from './hf.js';
import { CONFIG_LIMITS, configProblems, expectedTensors } from './llama.js';
import { openLlama2c } from './llama2c.js';
import { parseSafetensors } from './safetensors.js';
import { SYNTH_PRESETS, synthModel, synthVocabulary } from './synth.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'ie-bounded-'));

/** Runs `f`, expects a FormatError with `code` within `ms` milliseconds; returns it. */
async function refused(f: () => unknown, code: string, ms = 1000): Promise<FormatError> {
  const t0 = performance.now();
  let err: unknown;
  try {
    await f();
  } catch (e) {
    err = e;
  }
  const took = performance.now() - t0;
  expect(err, `expected ${code}`).toBeInstanceOf(FormatError);
  expect((err as FormatError).code, (err as Error).message).toBe(code);
  expect(took).toBeLessThan(ms);
  return err as FormatError;
}

function mkfifo(path: string): boolean {
  try {
    execFileSync('mkfifo', [path]);
    return true;
  } catch {
    return false;
  }
}

const tiny = SYNTH_PRESETS.tiny.config;

function tinyGguf(kvOverride: Record<string, unknown> = {}): Uint8Array {
  const vocab = synthVocabulary(tiny.vocab_size);
  const tensors: GgufTensorIn[] = expectedTensors(tiny).map((t) => ({
    name: t.name,
    ne: [...t.shape].reverse(),
    type: 0,
    data: new Uint8Array(t.shape.reduce((a, b) => a * b, 1) * 4),
  }));
  return buildGguf({ ...llamaKv(tiny, vocab.pieces, vocab.types), ...(kvOverride as Record<string, never>) }, tensors);
}

/** A GGUF header with one metadata array of `n` u8 elements (only the header's bytes are given; `fileSize` claims the rest). */
function ggufWithArray(n: number): { head: Uint8Array; fileSize: number } {
  const key = Buffer.from('tokenizer.ggml.token_type');
  const b = Buffer.alloc(4 + 4 + 8 + 8 + 8 + key.length + 4 + 4 + 8);
  let p = 0;
  b.write('GGUF', p);
  p += 4;
  b.writeUInt32LE(3, p);
  p += 4;
  b.writeBigUInt64LE(0n, p);
  p += 8;
  b.writeBigUInt64LE(1n, p);
  p += 8;
  b.writeBigUInt64LE(BigInt(key.length), p);
  p += 8;
  key.copy(b, p);
  p += key.length;
  b.writeUInt32LE(9, p);
  p += 4; // array
  b.writeUInt32LE(0, p);
  p += 4; // of u8
  b.writeBigUInt64LE(BigInt(n), p);
  return { head: b, fileSize: b.length + n };
}

describe('GGUF: caps before allocation', () => {
  it('refuses llama.block_count 2^31 in under a second', async () => {
    const d = tmp();
    writeFileSync(join(d, 'm.gguf'), tinyGguf({ 'llama.block_count': { t: 'u32', v: 2 ** 31 } }));
    const e = await refused(() => openGguf(join(d, 'm.gguf')), 'GGUF_BAD_METADATA');
    expect(e.field).toBe('llama.block_count');
  });

  it('refuses heads, dims and vocab past their caps', async () => {
    const d = tmp();
    for (const [k, v] of [
      ['llama.attention.head_count', 1 << 20],
      ['llama.embedding_length', 2 ** 31],
      ['llama.context_length', 2 ** 30],
    ] as const) {
      writeFileSync(join(d, 'm.gguf'), tinyGguf({ [k]: { t: 'u32', v } }));
      await refused(() => openGguf(join(d, 'm.gguf')), 'GGUF_BAD_METADATA');
    }
  });

  it('refuses a 20M-element metadata array cheaply (before reading or allocating it)', async () => {
    const { head, fileSize } = ggufWithArray(20_000_000);
    const e = await refused(() => parseGguf(head, fileSize, 'x.gguf'), 'GGUF_TOO_MANY_ENTRIES', 100);
    expect(e.message).toMatch(/more than the cap/);
    // Written out, the file is refused by openGguf just as fast.
    const d = tmp();
    writeFileSync(join(d, 'big.gguf'), Buffer.concat([head, Buffer.alloc(20_000_000)]));
    await refused(() => openGguf(join(d, 'big.gguf')), 'GGUF_TOO_MANY_ENTRIES');
  });

  it('charges metadata against a memory budget', () => {
    const { head, fileSize } = ggufWithArray(100_000);
    const bytes = Buffer.concat([head, Buffer.alloc(100_000)]);
    expect(() => parseGguf(bytes, fileSize, 'x.gguf')).not.toThrow();
    expect(() => parseGguf(bytes, fileSize, 'x.gguf', { ...DEFAULT_GGUF_LIMITS, maxMetadataBytes: 1 << 20 })).toThrow(/in memory/);
  });
});

describe('Hugging Face directories: caps and regular files', () => {
  async function hfDir(): Promise<string> {
    const d = join(tmp(), 'hf');
    await writeHfDir(synthModel('tiny'), d);
    return d;
  }
  const patchConfig = (d: string, patch: Record<string, unknown>) => {
    const cfg = JSON.parse(readFileSync(join(d, 'config.json'), 'utf8'));
    writeFileSync(join(d, 'config.json'), JSON.stringify({ ...cfg, ...patch }));
  };

  it('refuses num_hidden_layers 2^31 before enumerating tensors', async () => {
    const d = await hfDir();
    patchConfig(d, { num_hidden_layers: 2 ** 31 });
    const e = await refused(() => openHfDir(d), 'HF_BAD_CONFIG');
    expect(e.field).toBe('num_hidden_layers');
  });

  it('refuses a gpt-oss num_hidden_layers 2^31 before sizing layer_types', async () => {
    const d = join(tmp(), 'oss');
    await writeHfDir(synthModel('gpt-oss-tiny'), d);
    patchConfig(d, { num_hidden_layers: 2 ** 31, layer_types: undefined });
    await refused(() => openHfDir(d), 'HF_BAD_CONFIG');
  });

  it('refuses huge heads, vocab and sliding_window as config.json names them', async () => {
    const d = await hfDir();
    for (const [patch, field] of [
      [{ num_attention_heads: 1 << 20, num_key_value_heads: 1 << 20, head_dim: 8 }, 'num_attention_heads'],
      [{ vocab_size: 2 ** 31 }, 'vocab_size'],
      [{ architectures: ['MistralForCausalLM'], model_type: 'mistral', sliding_window: 2 ** 24 + 1 }, 'sliding_window'],
    ] as const) {
      const saved = readFileSync(join(d, 'config.json'));
      patchConfig(d, patch);
      const e = await refused(() => openHfDir(d), 'HF_BAD_CONFIG');
      expect(e.field).toBe(field);
      writeFileSync(join(d, 'config.json'), saved);
    }
  });

  it('refuses a tokenizer.json that is a symlink to /dev/urandom, a FIFO or a /proc file, without hanging', async () => {
    const d = await hfDir();
    const tok = join(d, 'tokenizer.json');
    if (existsSync('/dev/urandom')) {
      unlinkSync(tok);
      symlinkSync('/dev/urandom', tok);
      const e = await refused(() => openHfDir(d), 'HF_BAD_TOKENIZER');
      expect(e.message).toMatch(/not a regular file/);
    }
    if (existsSync('/proc/self/environ')) {
      unlinkSync(tok);
      symlinkSync('/proc/self/environ', tok);
      await refused(() => openHfDir(d), 'HF_BAD_TOKENIZER');
    }
    unlinkSync(tok);
    if (mkfifo(tok)) await refused(() => openHfDir(d), 'HF_BAD_TOKENIZER');
  });

  it('says where config.json is not JSON without quoting it', async () => {
    const d = await hfDir();
    writeFileSync(join(d, 'config.json'), 'SECRET=hunter2 and more');
    const e = await refused(() => openHfDir(d), 'HF_NOT_A_MODEL_DIR');
    expect(e.message).not.toMatch(/SECRET|hunter2/);
    writeFileSync(join(d, 'config.json'), '{"hidden_size": 64, "SECRET": hunter2}');
    const e2 = await refused(() => openHfDir(d), 'HF_NOT_A_MODEL_DIR');
    expect(e2.message).not.toMatch(/SECRET|hunter2/);
    expect(e2.message).toMatch(/not valid JSON/);
    writeFileSync(join(d, 'config.json'), '{"hidden_size": 64} SECRET');
    expect((await refused(() => openHfDir(d), 'HF_NOT_A_MODEL_DIR')).message).toMatch(/not valid JSON \(at character 20\)/);
  });
});

describe('regular files only', () => {
  it('readRegularFile reads a regular file and refuses devices, FIFOs, /proc files and sizes over the cap', async () => {
    const d = tmp();
    const fail = (code: FormatErrorCode, m: string) => new FormatError(code, m);
    writeFileSync(join(d, 'ok'), 'hello');
    expect(Buffer.from(await readRegularFile(join(d, 'ok'), 5, fail)).toString()).toBe('hello');
    await refused(() => readRegularFile(join(d, 'ok'), 4, fail), 'IO_ERROR');
    await refused(() => readRegularFile(join(d, 'missing'), 4, fail), 'IO_ERROR');
    await refused(() => readRegularFile(d, 1 << 20, fail), 'IO_ERROR');
    if (existsSync('/dev/zero')) await refused(() => readRegularFile('/dev/zero', 1 << 20, fail), 'IO_ERROR');
    if (existsSync('/proc/self/status')) await refused(() => readRegularFile('/proc/self/status', 1 << 20, fail), 'IO_ERROR');
    if (mkfifo(join(d, 'fifo'))) await refused(() => readRegularFile(join(d, 'fifo'), 1 << 20, fail), 'IO_ERROR');
  });

  it.skipIf(!existsSync('/proc/self/status'))('with sizeMayDiffer, a /proc file (size 0) is read as it reads, up to the cap', async () => {
    const fail = (code: FormatErrorCode, m: string) => new FormatError(code, m);
    const opts = { sizeMayDiffer: true };
    const text = Buffer.from(await readRegularFile('/proc/self/status', 1 << 20, fail, 'IO_ERROR', opts)).toString();
    expect(text).toMatch(/^Name:/);
    expect(text).toMatch(/\nPid:\t\d+\n/);
    expect((await refused(() => readRegularFile('/proc/self/status', 8, fail, 'IO_ERROR', opts), 'IO_ERROR')).message).toMatch(
      /is over the 8-byte cap/,
    );
    await refused(() => readRegularFile('/dev/zero', 1 << 20, fail, 'IO_ERROR', opts), 'IO_ERROR');
  });

  it('a llama2.c checkpoint or tokenizer that is a FIFO is refused at once', async () => {
    const d = tmp();
    if (!mkfifo(join(d, 'fifo'))) return;
    await refused(() => openLlama2c(join(d, 'fifo'), join(d, 'fifo')), 'IO_ERROR');
  });
});

describe('safetensors: data fills the file exactly, as the reference reader demands', () => {
  function st(header: Record<string, unknown>, dataBytes: number, lengthDelta = 0): Uint8Array {
    const json = Buffer.from(JSON.stringify(header));
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(json.length + lengthDelta));
    return Buffer.concat([prefix, json, Buffer.alloc(dataBytes)]);
  }
  const a = (b: number, e: number) => ({ dtype: 'F32', shape: [(e - b) / 4], data_offsets: [b, e] });

  it('accepts contiguous tensors in any header order', () => {
    expect(parseSafetensors(st({ y: a(8, 16), x: a(0, 8) }, 16)).entries).toHaveLength(2);
  });
  it('refuses a gap, a start past 0 and trailing bytes', async () => {
    await refused(() => parseSafetensors(st({ x: a(0, 8), y: a(12, 20) }, 20)), 'SAFETENSORS_NOT_CONTIGUOUS');
    await refused(() => parseSafetensors(st({ x: a(4, 12) }, 12)), 'SAFETENSORS_NOT_CONTIGUOUS');
    await refused(() => parseSafetensors(st({ x: a(0, 8) }, 9)), 'SAFETENSORS_NOT_CONTIGUOUS');
  });
  it('refuses a header length off by one instead of shifting every tensor', async () => {
    // The writer pads the header with spaces: a length one short still parses, and would shift the data by a byte.
    const json = Buffer.from(`${JSON.stringify({ x: a(0, 8) })} `);
    const padded = Buffer.concat([Buffer.alloc(8), json, Buffer.alloc(8)]);
    padded.writeBigUInt64LE(BigInt(json.length - 1));
    await refused(() => parseSafetensors(padded), 'SAFETENSORS_NOT_CONTIGUOUS');
  });
  it('says where the header is not JSON without quoting it', async () => {
    const json = Buffer.from('{"x": SECRET}');
    const prefix = Buffer.alloc(8);
    prefix.writeBigUInt64LE(BigInt(json.length));
    const e = await refused(() => parseSafetensors(Buffer.concat([prefix, json])), 'SAFETENSORS_HEADER_NOT_JSON');
    expect(e.message).not.toMatch(/SECRET/);
  });
});

describe('configProblems caps what the kernels cap', () => {
  it('refuses a sliding_window over 2^24 and an oversized Q width', () => {
    expect(configProblems({ ...tiny, sliding_window: CONFIG_LIMITS.sliding_window })).toEqual([]);
    expect(configProblems({ ...tiny, sliding_window: CONFIG_LIMITS.sliding_window + 1 })[0][0]).toBe('sliding_window');
    expect(configProblems({ ...tiny, n_heads: 4096, n_kv_heads: 4096, head_dim: 65536 })[0][0]).toBe('head_dim');
    expect(configProblems({ ...tiny, n_layers: 2 ** 31 })[0][0]).toBe('n_layers');
  });
});
