import { spawnSync } from 'node:child_process';
import {
  closeSync,
  ftruncateSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  statSync,
  symlinkSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { firstDifference, sameBytes } from '@ie/testing';
import { exportIebin } from './export-iebin.js';
import { IebinError } from './errors.js';
import { MAX_HEADER_DEPTH, parseIebinHeader } from './header.js';
import { alignUp, tensorByteSize } from './layout.js';
import { expectedTensors } from './llama.js';
import { IebinReader } from './reader.js';
import { modelFileKind } from './sniff.js';
import { SYNTH_PRESETS, synthModel, synthTensorValues } from './synth.js';
import { decodeTensor } from './tensor.js';
import { IebinWriter, formatHeaderJson } from './writer.js';

const tiny = SYNTH_PRESETS.tiny.config;
let dir: string;
let headerText: string;

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'ie-format-'));
}

beforeAll(async () => {
  dir = tmp();
  await exportIebin(synthModel('tiny', { seed: 7 }), dir, { converter: 'test' });
  headerText = readFileSync(join(dir, 'model.ie.json'), 'utf8');
});

/** Applies `mutate` to a copy of the tiny model's header JSON and returns the parse error code. */
function codeAfter(mutate: (h: any) => void, limits?: { maxHeaderBytes: number; maxTensors: number }): string {
  const h = JSON.parse(headerText);
  mutate(h);
  try {
    parseIebinHeader(JSON.stringify(h), 'model.ie.json', limits);
  } catch (e) {
    expect(e).toBeInstanceOf(IebinError);
    return (e as IebinError).code;
  }
  return 'no error';
}

describe('IebinReader on a written model', () => {
  it('reads back every tensor exactly, lazily from disk and zero-copy from a buffer', async () => {
    const r = await IebinReader.open(dir);
    expect(r.config).toEqual(tiny);
    expect(r.tensors.length).toBe(21);
    expect(r.tensors.every((t) => t.offset % 64 === 0)).toBe(true);
    for (const [i, t] of r.tensors.entries()) {
      const v = await r.read(t.name);
      expect(firstDifference(decodeTensor(t, v.bytes), synthTensorValues(tiny, 7, i))).toBeNull();
    }
    const bin = readFileSync(join(dir, 'model.ie.bin'));
    const aligned = new Uint8Array(bin.length);
    aligned.set(bin);
    r.attach(aligned);
    const view = r.view('blk.1.ffn_down.weight');
    expect(view.bytes.buffer).toBe(aligned.buffer); // zero-copy
    expect(firstDifference(decodeTensor(view.entry, view.bytes), synthTensorValues(tiny, 7, 18))).toBeNull();
    expect((await r.verify()).ok).toBe(true);
    expect(() => r.tensor('nope')).toThrow(expect.objectContaining({ code: 'IEBIN_TENSOR_NOT_FOUND' }));
    expect(() => r.attach(new Uint8Array(10))).toThrow(expect.objectContaining({ code: 'IEBIN_BUFFER_TOO_SMALL' }));
    await r.close();
  });

  it('detects a flipped byte with --deep checksums and a truncated bin at open', async () => {
    const d = tmp();
    await exportIebin(synthModel('tiny', { seed: 7 }), d, { converter: 'test' });
    const binPath = join(d, 'model.ie.bin');
    const b = readFileSync(binPath);
    const r0 = await IebinReader.open(d);
    const victim = r0.tensor('blk.0.attn_v.weight');
    b[victim.offset + 5] ^= 0x40;
    writeFileSync(binPath, b);
    const r = await IebinReader.open(d); // structure is still fine
    const rep = await r.verify();
    expect(rep.ok).toBe(false);
    expect(rep.problems).toHaveLength(1);
    expect(rep.problems[0].code).toBe('IEBIN_CHECKSUM_MISMATCH');
    expect(rep.problems[0].message).toContain('blk.0.attn_v.weight');
    await r.close();
    truncateSync(binPath, statSync(binPath).size - 1);
    await expect(IebinReader.open(d)).rejects.toMatchObject({ code: 'IEBIN_BIN_SIZE_MISMATCH' });
  });

  it('refuses missing paths and oversized headers', async () => {
    await expect(IebinReader.open(join(dir, 'nope'))).rejects.toMatchObject({ code: 'IEBIN_NOT_FOUND' });
    await expect(IebinReader.open(dir, { limits: { maxHeaderBytes: 1000 } })).rejects.toMatchObject({ code: 'IEBIN_HEADER_TOO_LARGE' });
  });

  it('says what another model format given in its place is (a directory of HF or GGUF files, a GGUF or safetensors file)', async () => {
    const refuses = (path: string, code: string, text: string) =>
      expect(IebinReader.open(path)).rejects.toMatchObject({ code, message: expect.stringContaining(text) });
    const d = tmp();
    const header = Buffer.from('{"__metadata__":{}}');
    const st = Buffer.concat([Buffer.alloc(8), header]);
    st.writeBigUInt64LE(BigInt(header.length));
    writeFileSync(join(d, 'config.json'), '{}');
    writeFileSync(join(d, 'model.safetensors'), st);
    await refuses(d, 'IEBIN_NOT_FOUND', '(it holds a Hugging Face checkpoint: config.json and safetensors)');
    await refuses(join(d, 'model.safetensors'), 'IEBIN_HEADER_NOT_JSON', 'is a safetensors file');
    const g = tmp();
    const gguf = Buffer.alloc(64, 7);
    gguf.write('GGUF', 0, 'latin1');
    writeFileSync(join(g, 'b.gguf'), gguf);
    writeFileSync(join(g, 'a.gguf'), gguf);
    await refuses(g, 'IEBIN_NOT_FOUND', '(it holds GGUF files a.gguf, b.gguf: pass one of them itself)');
    await refuses(join(g, 'a.gguf'), 'IEBIN_HEADER_NOT_JSON', 'is a GGUF file, not an IEBIN model.ie.json');
    // Neither: the plain statements, as before.
    const e = tmp();
    await expect(IebinReader.open(e)).rejects.toThrow(/it is not an IEBIN model directory$/);
    writeFileSync(join(e, 'x.json'), 'nonsense');
    await expect(IebinReader.open(join(e, 'x.json'))).rejects.toThrow(/is not valid JSON/);
  });
});

describe('model files that are not regular files are refused at once, by path', () => {
  const canFifo = process.platform !== 'win32' && spawnSync('mkfifo', ['--version']).status === 0;
  const refusal = async (path: string) =>
    IebinReader.open(path).then(
      () => {
        throw new Error('not refused');
      },
      (e: unknown) => {
        if (!(e instanceof IebinError)) throw e;
        return { code: e.code, file: e.file, message: e.message };
      },
    );

  it.skipIf(!canFifo)('a FIFO as model.ie.json, or given as the model path (no writer: it would block forever)', async () => {
    const d = tmp();
    const json = join(d, 'model.ie.json');
    expect(spawnSync('mkfifo', [json]).status).toBe(0);
    expect(await refusal(d)).toEqual({
      code: 'IO_ERROR',
      file: json,
      message: `${json}: is not a regular file (a FIFO); only a regular file is read as model.ie.json`,
    });
    expect(await refusal(json)).toMatchObject({ code: 'IO_ERROR', file: json });
    const gguf = join(d, 'm.gguf');
    expect(spawnSync('mkfifo', [gguf]).status).toBe(0);
    expect(await refusal(gguf)).toMatchObject({ code: 'IO_ERROR', file: gguf });
    // Sniffing its format does not block either: it is no model file.
    expect(await modelFileKind(gguf)).toBeNull();
  });

  it.skipIf(process.platform === 'win32')('a device (model.ie.json -> /dev/zero, whose size is 0) is never read', async () => {
    const d = tmp();
    const json = join(d, 'model.ie.json');
    symlinkSync('/dev/zero', json);
    expect(await refusal(d)).toEqual({
      code: 'IO_ERROR',
      file: json,
      message: `${json}: is not a regular file (a character device); only a regular file is read as model.ie.json`,
    });
    expect(await modelFileKind('/dev/zero')).toBeNull();
  });

  it('a directory named model.ie.json, and a model.ie.bin that is not a file', async () => {
    const d = tmp();
    const json = join(d, 'model.ie.json');
    mkdirSync(json);
    expect(await refusal(d)).toMatchObject({ code: 'IO_ERROR', file: json, message: expect.stringContaining('(a directory)') });
    const m = tmp();
    writeFileSync(join(m, 'model.ie.json'), headerText);
    mkdirSync(join(m, 'model.ie.bin'));
    expect(await refusal(m)).toMatchObject({ code: 'IO_ERROR', file: join(m, 'model.ie.bin') });
  });
});

describe('header text an attacker or an accident made', () => {
  /** The tiny header with `quantization` nested `levels` objects deep (no checksum: it was edited). */
  const nested = (levels: number) => {
    const h = JSON.parse(headerText);
    delete h.header_sha256;
    return JSON.stringify(h).replace('"quantization":null', `"quantization":${'{"a":'.repeat(levels)}1${'}'.repeat(levels)}`);
  };

  it('refuses a header nested deeper than 64 levels before anything recurses into it (100,000 would overflow the stack)', () => {
    expect(MAX_HEADER_DEPTH).toBe(64);
    // The header object is level 1, quantization's object level 2: 63 levels of it reach 64.
    expect(parseIebinHeader(nested(63), 'm.json').quantization).toBeTruthy();
    for (const levels of [64, 100_000]) {
      expect(() => parseIebinHeader(nested(levels), 'm.json')).toThrow(
        expect.objectContaining({
          code: 'IEBIN_BAD_FIELD',
          file: 'm.json',
          field: 'quantization',
          message: 'm.json: quantization: nests objects and arrays deeper than 64 levels; it was edited or corrupted',
        }),
      );
    }
    const deepArray = JSON.stringify({
      ...JSON.parse(headerText),
      provenance: { notes: JSON.parse(`${'['.repeat(100)}${']'.repeat(100)}`) },
    });
    expect(() => parseIebinHeader(deepArray, 'm.json')).toThrow(expect.objectContaining({ code: 'IEBIN_BAD_FIELD', field: 'provenance' }));
  });

  it('says where the text stops being JSON, never what it holds (/etc/passwd given by mistake)', () => {
    const notJson = (text: string) => {
      try {
        parseIebinHeader(text, 'p');
      } catch (e) {
        expect(e).toMatchObject({ code: 'IEBIN_HEADER_NOT_JSON', file: 'p' });
        return (e as IebinError).message;
      }
      throw new Error('not refused');
    };
    expect(notJson('root:x:0:0:root:/root:/bin/bash\nsecret:x:1:1::/:/bin/sh\n')).toBe(
      'p: is not valid JSON (syntax error); re-export the model',
    );
    expect(notJson('{"format": "iebin",}')).toBe('p: is not valid JSON (at character 19); re-export the model');
    expect(notJson('{"format": "iebin", "secret": "line\nbreak"}')).toBe('p: is not valid JSON (at character 35); re-export the model');
    expect(notJson('{"format":')).toBe('p: is not valid JSON (at the end (truncated)); re-export the model');
  });
});

describe('header validation names the code and the field', () => {
  it.each([
    ['format name', (h: any) => (h.format = 'gguf'), 'IEBIN_BAD_FORMAT_NAME'],
    ['version', (h: any) => (h.version = 2), 'IEBIN_UNSUPPORTED_VERSION'],
    ['dtype', (h: any) => (h.tensors[1].dtype = 'q8'), 'IEBIN_BAD_DTYPE'],
    ['zero dim', (h: any) => (h.tensors[2].shape = [0, 64]), 'IEBIN_BAD_SHAPE'],
    ['rank 5', (h: any) => (h.tensors[2].shape = [1, 1, 1, 64, 64]), 'IEBIN_BAD_SHAPE'],
    ['fractional dim', (h: any) => (h.tensors[2].shape = [64.5, 64]), 'IEBIN_BAD_SHAPE'],
    ['byte size', (h: any) => (h.tensors[2].bytes += 4), 'IEBIN_SIZE_MISMATCH'],
    ['alignment', (h: any) => (h.tensors[3].offset += 32), 'IEBIN_MISALIGNED'],
    ['overlap', (h: any) => (h.tensors[3].offset -= 64), 'IEBIN_OVERLAP'],
    ['hole', (h: any) => h.tensors.slice(3).forEach((t: any) => (t.offset += 64)), 'IEBIN_HOLE'],
    ['range past the file', (h: any) => (h.tensors[20].offset += 64), 'IEBIN_HOLE'],
    ['bin size', (h: any) => (h.bin.bytes += 64), 'IEBIN_HOLE'],
    ['duplicate', (h: any) => (h.tensors[4].name = h.tensors[3].name), 'IEBIN_DUPLICATE_TENSOR'],
    ['missing tensor', (h: any) => (h.tensors[20].name = 'output2.weight'), 'IEBIN_MISSING_TENSOR'],
    ['wrong shape for config', (h: any) => (h.config.ffn_dim = 170), 'IEBIN_BAD_SHAPE'],
    ['config consistency', (h: any) => (h.config.n_kv_heads = 3), 'IEBIN_BAD_CONFIG'],
    ['pretransposed embedding', (h: any) => (h.tensors[0].layout.order = 'pretransposed'), 'IEBIN_BAD_LAYOUT'],
    ['unaligned block_k', (h: any) => (h.tensors[2].layout.block_k = 48), 'IEBIN_BAD_LAYOUT'],
    ['checksum format', (h: any) => (h.tensors[2].crc32 = 'xyz'), 'IEBIN_BAD_FIELD'],
    ['quant on a float tensor', (h: any) => (h.tensors[2].quant = { scheme: 'symmetric' }), 'IEBIN_BAD_QUANT'],
    ['tokenizer size', (h: any) => h.tokenizer.pieces.pop(), 'IEBIN_BAD_TOKENIZER'],
    ['bin file with a path', (h: any) => (h.bin.file = '../x.bin'), 'IEBIN_BAD_FIELD'],
    ['unsafe integer offset', (h: any) => (h.tensors[2].offset = 2 ** 60), 'IEBIN_RANGE_OUT_OF_FILE'],
    ['not an object', (h: any) => (h.config = [1]), 'IEBIN_BAD_FIELD'],
  ])('%s', (_name, mutate, code) => {
    expect(codeAfter(mutate)).toBe(code);
  });

  it('caps the tensor count and rejects non-JSON', () => {
    expect(codeAfter(() => undefined, { maxHeaderBytes: 1 << 20, maxTensors: 5 })).toBe('IEBIN_TOO_MANY_TENSORS');
    expect(() => parseIebinHeader('{"format":', 'x.json')).toThrow(
      expect.objectContaining({ code: 'IEBIN_HEADER_NOT_JSON', file: 'x.json' }),
    );
  });

  it('says which field is wrong', () => {
    const h = JSON.parse(headerText);
    h.tensors[3].offset += 32;
    expect(() => parseIebinHeader(JSON.stringify(h), 'm.json')).toThrow(/m\.json: tensors\[3\]\.offset: .* is not a multiple of 64/);
  });
});

describe('IebinWriter commits atomically', () => {
  const files = (d: string) => readdirSync(d).sort();

  it('removes the output directory it made (with the parents it made) when the export fails, never one that was there', async () => {
    const failing = (seed: number, during?: () => void) => {
      const src = synthModel('tiny', { seed });
      src.tensors[5].read = async () => {
        during?.();
        throw new Error('disk on fire');
      };
      return src;
    };
    const base = tmp();
    // New directories, parents included: all gone.
    await expect(exportIebin(failing(1), join(base, 'a', 'b', 'out'), { converter: 'test' })).rejects.toThrow('disk on fire');
    expect(files(base)).toEqual([]);
    // A directory that existed (empty, or holding something): kept as it was.
    const empty = join(base, 'empty');
    mkdirSync(empty);
    await expect(exportIebin(failing(1), empty, { converter: 'test' })).rejects.toThrow('disk on fire');
    expect(files(empty)).toEqual([]);
    await expect(exportIebin(failing(1), join(empty, 'x', 'out'), { converter: 'test' })).rejects.toThrow('disk on fire');
    expect(files(empty)).toEqual([]);
    // One it made but something else wrote into meanwhile: kept, with that file.
    const shared = join(base, 'shared');
    await expect(
      exportIebin(
        failing(1, () => writeFileSync(join(shared, 'notes.txt'), 'mine')),
        shared,
        { converter: 'test' },
      ),
    ).rejects.toThrow('disk on fire');
    expect(files(shared)).toEqual(['notes.txt']);
    // Refused at finish (the header does not validate), and aborted synchronously (a signal): gone too.
    const src = synthModel('tiny');
    const opts = {
      config: src.config,
      tokenizer: src.tokenizer,
      provenance: { converter: 't', source_format: 'synth' as const, sources: [] },
    };
    const w = await IebinWriter.create(join(base, 'fin'), opts);
    await expect(w.finish()).rejects.toMatchObject({ code: 'IEBIN_MISSING_TENSOR' });
    const w2 = await IebinWriter.create(join(base, 'sig', 'out'), opts);
    w2.abortSync();
    expect(files(base)).toEqual(['empty', 'shared']);
  });

  it('leaves an existing model untouched and no partial files when an export fails', async () => {
    const d = tmp();
    await exportIebin(synthModel('tiny', { seed: 1 }), d, { converter: 'test' });
    const before = [readFileSync(join(d, 'model.ie.json')), readFileSync(join(d, 'model.ie.bin'))];
    const src = synthModel('tiny', { seed: 2 });
    src.tensors[5].read = async () => {
      throw new Error('disk on fire');
    };
    await expect(exportIebin(src, d, { converter: 'test' })).rejects.toThrow('disk on fire');
    expect(files(d)).toEqual(['model.ie.bin', 'model.ie.json']);
    expect(sameBytes(readFileSync(join(d, 'model.ie.json')), before[0])).toBe(true);
    expect(sameBytes(readFileSync(join(d, 'model.ie.bin')), before[1])).toBe(true);
  });

  it('refuses to finish a model whose tensor table does not match its config', async () => {
    const d = tmp();
    const src = synthModel('tiny');
    const w = await IebinWriter.create(d, {
      config: src.config,
      tokenizer: src.tokenizer,
      provenance: { converter: 't', source_format: 'synth', sources: [] },
    });
    await w.addTensor({ name: 'token_embd.weight', dtype: 'f32', shape: [512, 64] }, await src.tensors[0].read());
    await expect(w.addTensor({ name: 'x', dtype: 'f32', shape: [3] }, new Uint8Array(8))).rejects.toMatchObject({
      code: 'IEBIN_SIZE_MISMATCH',
    });
    expect(files(d)).toEqual([]);
    const w2 = await IebinWriter.create(d, {
      config: src.config,
      tokenizer: src.tokenizer,
      provenance: { converter: 't', source_format: 'synth', sources: [] },
    });
    await w2.addTensor({ name: 'token_embd.weight', dtype: 'f32', shape: [512, 64] }, await src.tensors[0].read());
    await expect(w2.finish()).rejects.toMatchObject({ code: 'IEBIN_MISSING_TENSOR' });
    expect(files(d)).toEqual([]);
    await expect(w2.addTensor({ name: 'a', dtype: 'f32', shape: [1] }, new Uint8Array(4))).rejects.toMatchObject({
      code: 'IEBIN_WRITER_STATE',
    });
  });

  it('removes partial files of dead writers and keeps those of live ones', async () => {
    const d = tmp();
    writeFileSync(join(d, '.model.ie.bin.partial-999999999-0'), 'stale');
    // This process, but no writer of it holds the name (a writer that died here): stale too.
    writeFileSync(join(d, `.model.ie.bin.partial-${process.pid}-77`), 'ours, orphaned');
    // A process that is alive (our parent): kept.
    writeFileSync(join(d, `.model.ie.bin.partial-${process.ppid}-77`), 'live');
    const src = synthModel('tiny');
    const opts = {
      config: src.config,
      tokenizer: src.tokenizer,
      provenance: { converter: 't', source_format: 'synth' as const, sources: [] },
    };
    const w1 = await IebinWriter.create(d, opts);
    const own = files(d).filter((n) => n.startsWith(`.model.ie.bin.partial-${process.pid}-`));
    expect(own).toHaveLength(1);
    expect(own[0]).toMatch(/^\.model\.ie\.bin\.partial-\d+-[0-9a-f]{16}$/);
    const w2 = await IebinWriter.create(d, opts);
    const names = files(d);
    expect(names).not.toContain('.model.ie.bin.partial-999999999-0');
    expect(names).not.toContain(`.model.ie.bin.partial-${process.pid}-77`);
    expect(names).toContain(`.model.ie.bin.partial-${process.ppid}-77`);
    expect(names).toContain(own[0]); // w1 is alive: w2 left its file alone
    w1.abortSync();
    w2.abortSync();
    expect(files(d)).toEqual([`.model.ie.bin.partial-${process.ppid}-77`]);
  });

  it('writes the same bytes for the same input (reproducible exports)', async () => {
    const a = tmp();
    const b = tmp();
    await exportIebin(synthModel('tiny', { seed: 3 }), a, { converter: 'test' });
    await exportIebin(synthModel('tiny', { seed: 3 }), b, { converter: 'test' });
    expect(sameBytes(readFileSync(join(a, 'model.ie.json')), readFileSync(join(b, 'model.ie.json')))).toBe(true);
    expect(sameBytes(readFileSync(join(a, 'model.ie.bin')), readFileSync(join(b, 'model.ie.bin')))).toBe(true);
  });

  it('formats the header with one tensor per line', () => {
    const h = parseIebinHeader(headerText, 'm');
    const text = formatHeaderJson(h);
    expect(text).toBe(headerText);
    expect(text.split('\n').filter((l) => l.includes('"crc32"'))).toHaveLength(21);
  });
});

describe('opening is lazy', () => {
  it('opens a 4 GiB model without reading it (sparse bin, header only)', async () => {
    const cfg = SYNTH_PRESETS['tinyllama-1.1b'].config;
    let off = 0n;
    const tensors = expectedTensors(cfg).map((e) => {
      const offset = alignUp(off);
      const bytes = tensorByteSize('f32', e.shape, null);
      off = offset + bytes;
      return {
        name: e.name,
        dtype: 'f32' as const,
        shape: e.shape,
        offset: Number(offset),
        bytes: Number(bytes),
        layout: { order: 'row_major' as const, block_k: 0 },
        quant: null,
        crc32: '00000000',
      };
    });
    const d = tmp();
    const header = {
      format: 'iebin' as const,
      version: 1 as const,
      config: cfg,
      tokenizer: synthModel('tinyllama-1.1b').tokenizer as any,
      provenance: { converter: 't', source_format: 'synth' as const, sources: [] },
      bin: { file: 'model.ie.bin', bytes: Number(off), alignment: 64 },
      tensors,
      quantization: null,
    };
    writeFileSync(join(d, 'model.ie.json'), formatHeaderJson(header));
    const fd = openSync(join(d, 'model.ie.bin'), 'w');
    ftruncateSync(fd, Number(off)); // sparse: no data blocks
    closeSync(fd);
    expect(Number(off)).toBeGreaterThan(4e9);
    const rss0 = process.memoryUsage().rss;
    const t0 = performance.now();
    const r = await IebinReader.open(d);
    const t = await r.read('blk.21.ffn_down.weight');
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(t.bytes.length).toBe(2048 * 5632 * 4);
    expect(process.memoryUsage().rss - rss0).toBeLessThan(256 << 20);
    await r.close();
  });
});

describe('model.ie.json checks its own checksum', () => {
  it('a value changed after export that still validates is caught; headers without the field still load; unknown top-level fields are refused', async () => {
    const d = tmp();
    await exportIebin(synthModel('tiny', { seed: 2 }), d, { converter: 't' });
    const file = join(d, 'model.ie.json');
    const text = readFileSync(file, 'utf8');
    expect(text).toMatch(/"header_sha256": "[0-9a-f]{64}"/);
    await (await IebinReader.open(d)).close();
    const code = async () => {
      try {
        await (await IebinReader.open(d)).close();
        return 'ok';
      } catch (e) {
        return (e as IebinError).code;
      }
    };
    writeFileSync(file, text.replace('"rope_theta":10000', '"rope_theta":10001'));
    expect(await code()).toBe('IEBIN_HEADER_CHECKSUM');
    writeFileSync(file, text.replace(/,\n {2}"header_sha256": "[0-9a-f]{64}"/, ''));
    expect(await code()).toBe('ok');
    writeFileSync(file, text.replace('"header_sha256"', '"header_sha257"'));
    expect(await code()).toBe('IEBIN_UNKNOWN_FIELD');
  });
});
