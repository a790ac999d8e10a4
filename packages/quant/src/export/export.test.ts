import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IebinReader, decodeTensor, exportIebin, floatValues, synthModel, type ModelSource } from '@ie/format';
import { REPO_ROOT } from '@ie/testing';
import { describe, expect, it } from 'vitest';
import { ManifestError } from '../errors.js';
import { modelFingerprint, tensorSha256 } from '../manifest/fingerprint.js';
import { manifestSha256, parseManifest, type LoadedManifest } from '../manifest/parse.js';
import type { ExpandedManifest } from '../manifest/schema.js';
import { packInt4Groupwise } from '../pack.js';
import { dequantizeMatrix, encodeScales, quantizeMatrix } from '../ptq/quantize.js';
import { planExport } from './prepare.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'ie-quant-'));
const load = (text: string, file = 'm.json'): LoadedManifest => ({
  manifest: parseManifest(text, file),
  file,
  sha256: manifestSha256(text),
});
const defaultPolicy = () => load(readFileSync(join(REPO_ROOT, 'quant/q4_manifest.json'), 'utf8'), 'q4_manifest.json');

async function exportWith(source: ModelSource, loaded: LoadedManifest, force = false) {
  const plan = planExport(loaded, source.config, source.tensors, { force });
  const dir = tmp();
  const header = await exportIebin(source, dir, { converter: 'test', ...plan.options });
  return { dir, header, plan };
}

/** An expanded manifest for `source` as `ie quantize` would write it, quality omitted. */
async function expandedFor(source: ModelSource, edit: (m: ExpandedManifest) => void = () => {}): Promise<ExpandedManifest> {
  const tensors: Array<{ name: string; shape: number[]; sha256: string }> = [];
  for (const t of source.tensors) tensors.push({ name: t.name, shape: t.shape, sha256: tensorSha256(t.dtype, t.quant, await t.read()) });
  const c = source.config;
  const m: ExpandedManifest = {
    kind: 'expanded',
    version: 1,
    status: 'accepted',
    policy: { sha256: 'b'.repeat(64) },
    model: { fingerprint: modelFingerprint(c, tensors), config: { ...c } },
    gate: {
      thresholds: { min_cosine: 0.9, min_snr_db: 10, max_kl: 0.2, min_top1: 0.5 },
      end_to_end: { kl_mean: 0.01, kl_max: 0.1, top1: 0.9, positions: 10 },
      failures: [],
    },
    scales: {},
    tensors: source.tensors.map((t, i) => ({
      name: t.name,
      shape: [...t.shape],
      source: { dtype: t.dtype, sha256: tensors[i].sha256 },
      scheme: 'f32' as const,
      layout: { order: 'row_major' as const, block_k: 0 },
      verdict: 'not_measured' as const,
    })),
  };
  edit(m);
  return m;
}

describe('export per policy', () => {
  it('packs the projections of a synthetic model as the default policy says, reproducibly, with an audit record', async () => {
    const a = await exportWith(synthModel('tiny', { seed: 3 }), defaultPolicy());
    const r = await IebinReader.open(a.dir);
    try {
      const q = r.tensors.filter((t) => t.dtype === 'q4');
      expect(q.map((t) => t.name)).toEqual(
        r.tensors.filter((t) => /attn_(q|k|v|output)|ffn_/.test(t.name) && t.shape.length === 2).map((t) => t.name),
      );
      expect(q.every((t) => t.quant?.group_size === 64 && t.quant.scheme === 'symmetric' && t.quant.scale_dtype === 'f16')).toBe(true);
      expect(r.tensors.filter((t) => t.dtype !== 'q4').every((t) => t.dtype === 'f32')).toBe(true);
      // Each packed tensor is exactly clip-searched q4 of the source values.
      const src = synthModel('tiny', { seed: 3 });
      const t = src.tensors.find((x) => x.name === 'blk.1.ffn_down.weight');
      if (!t) throw new Error('missing');
      const [rows, cols] = t.shape;
      const values = floatValues(t, await t.read());
      const entry = r.tensor(t.name);
      const want = dequantizeMatrix(
        quantizeMatrix(values, rows, cols, { dtype: 'q4', quant: entry.quant as NonNullable<typeof entry.quant> }, 'clip').bytes,
        rows,
        cols,
        { dtype: 'q4', quant: entry.quant as NonNullable<typeof entry.quant> },
      );
      expect(decodeTensor(entry, (await r.read(t.name)).bytes)).toEqual(want);
      const rec = r.header.quantization as Record<string, any>;
      expect(rec.manifest).toEqual({
        kind: 'policy',
        file: 'q4_manifest.json',
        sha256: defaultPolicy().sha256,
        status: null,
        policy_sha256: defaultPolicy().sha256,
      });
      expect(rec.tensors['blk.0.attn_q.weight']).toEqual({
        scheme: 'int4w',
        mode: 'symmetric',
        granularity: 'per_group',
        group_size: 64,
        scale_dtype: 'f16',
        method: 'clip',
      });
      expect(Object.keys(rec.tensors)).toHaveLength(q.length);
    } finally {
      await r.close();
    }
    const b = await exportWith(synthModel('tiny', { seed: 3 }), defaultPolicy());
    expect(readFileSync(join(b.dir, 'model.ie.bin')).equals(readFileSync(join(a.dir, 'model.ie.bin')))).toBe(true);
    expect(readFileSync(join(b.dir, 'model.ie.json'), 'utf8')).toBe(readFileSync(join(a.dir, 'model.ie.json'), 'utf8'));
  });

  it('maps llama.cpp Q4_0 source tensors onto int4w g32 without requantizing', async () => {
    const src = synthModel('tiny', { seed: 8 });
    const packed = new Map<string, Uint8Array>();
    for (const t of src.tensors) {
      if (!t.name.endsWith('attn_q.weight')) continue;
      const [rows, cols] = t.shape;
      const p = packInt4Groupwise(floatValues(t, await t.read()), rows, cols, { scheme: 'symmetric', groupSize: 32, scaleDtype: 'f16' });
      packed.set(t.name, p.bytes);
      Object.assign(t, { dtype: 'q4', quant: p.quant, read: async () => p.bytes });
    }
    // A tensor's digest names its encoding, not where a file put its planes.
    const first = src.tensors.find((t) => t.name === 'blk.0.attn_q.weight');
    if (!first) throw new Error('missing');
    const bytes = await first.read();
    expect(
      tensorSha256('q4', { ...(first.quant as NonNullable<typeof first.quant>), scales_offset: 1024, zeros_offset: null } as never, bytes),
    ).toBe(tensorSha256('q4', first.quant, bytes));
    const q4_0 = load(
      JSON.stringify({
        kind: 'policy',
        version: 1,
        defaults: { method: 'clip' },
        rules: [{ match: 'blk.*.attn_q.weight', scheme: 'int4w', group_size: 32, mode: 'symmetric', scale_dtype: 'f16' }],
      }),
    );
    const { dir, plan } = await exportWith(src, q4_0);
    expect(plan.plans.filter((p) => p.passthrough && p.dtype === 'q4').map((p) => p.name)).toEqual([...packed.keys()]);
    const r = await IebinReader.open(dir);
    try {
      for (const [name, bytes] of packed) expect(Buffer.from((await r.read(name)).bytes).equals(Buffer.from(bytes))).toBe(true);
      expect((r.header.quantization as Record<string, any>).tensors['blk.0.attn_q.weight'].method).toBe('source');
    } finally {
      await r.close();
    }
  });

  it('refuses a policy that needs calibration', () => {
    const p = JSON.parse(readFileSync(join(REPO_ROOT, 'quant/q4_manifest.json'), 'utf8'));
    p.defaults.method = 'awq';
    const src = synthModel('tiny');
    expect(() => planExport(load(JSON.stringify(p), 'awq.json'), src.config, src.tensors)).toThrow(
      expect.objectContaining({
        code: 'QUANT_NEEDS_CALIBRATION',
        message: expect.stringMatching(/awq\.json uses activation-aware quantization, which needs a calibration run/),
      }),
    );
  });
});

describe('export per expanded manifest', () => {
  it('applies the float rewrites before packing: the norm is divided by what the projection columns are multiplied by', async () => {
    const src = synthModel('tiny', { seed: 4 });
    const s = Float32Array.from({ length: 64 }, (_, i) => 0.5 + (i % 7) / 4);
    const m = await expandedFor(src, (m) => {
      m.scales['blk.0.attn_in'] = encodeScales(s);
      for (const e of m.tensors) {
        if (/^blk\.0\.attn_[qkv]\.weight$/.test(e.name))
          Object.assign(e, {
            scheme: 'int4w',
            group_size: 32,
            mode: 'symmetric',
            scale_dtype: 'f16',
            method: 'clip',
            transforms: [{ op: 'scale_columns', by: 'blk.0.attn_in' }],
          });
        if (e.name === 'blk.0.attn_norm.weight') e.transforms = [{ op: 'divide', by: 'blk.0.attn_in' }];
      }
    });
    const { dir } = await exportWith(src, load(JSON.stringify(m)));
    const r = await IebinReader.open(dir);
    try {
      const norm = floatValues({ dtype: 'f32' }, (await r.read('blk.0.attn_norm.weight')).bytes);
      const orig = floatValues(
        { dtype: 'f32' },
        await (src.tensors.find((t) => t.name === 'blk.0.attn_norm.weight') as ModelSource['tensors'][0]).read(),
      );
      for (let i = 0; i < 64; i++) expect(norm[i]).toBe(Math.fround(orig[i] / s[i]));
      expect(r.tensor('blk.0.attn_k.weight').dtype).toBe('q4');
      expect(r.tensor('blk.1.attn_k.weight').dtype).toBe('f32');
      expect((r.header.quantization as Record<string, any>).tensors['blk.0.attn_v.weight'].transforms).toEqual([
        { op: 'scale_columns', by: 'blk.0.attn_in' },
      ]);
    } finally {
      await r.close();
    }
  });

  it('a manifest measured on other weights fails and leaves nothing behind', async () => {
    const m = await expandedFor(synthModel('tiny', { seed: 5 }));
    const other = synthModel('tiny', { seed: 6 }); // same shapes, other weights
    const plan = planExport(load(JSON.stringify(m)), other.config, other.tensors);
    const dir = join(tmp(), 'out');
    await expect(exportIebin(other, dir, { converter: 'test', ...plan.options })).rejects.toMatchObject({
      code: 'QUANT_MANIFEST_MISMATCH',
      message: expect.stringMatching(/weights differ/),
    });
    expect(existsSync(join(dir, 'model.ie.json'))).toBe(false);
    expect(existsSync(dir) ? readdirSync(dir) : []).toEqual([]);
  });

  it('a rejected manifest is refused unless forced', async () => {
    const src = synthModel('tiny', { seed: 7 });
    const m = await expandedFor(src, (m) => {
      m.status = 'rejected';
      m.gate.failures = ['end to end: mean KL 0.5 > max_kl 0.2'];
    });
    let err: unknown;
    try {
      planExport(load(JSON.stringify(m)), src.config, src.tensors);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ManifestError);
    expect((err as ManifestError).code).toBe('QUANT_MANIFEST_REJECTED');
    expect((err as ManifestError).problems).toEqual([{ field: 'gate', message: 'end to end: mean KL 0.5 > max_kl 0.2' }]);
    const { header } = await exportWith(src, load(JSON.stringify(m)), true);
    expect((header.quantization as Record<string, any>).manifest.status).toBe('rejected');
  });
});
