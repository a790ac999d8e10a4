import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SYNTH_PRESETS, exportIebin, openLlama2c, synthModel, type ModelConfig } from '@ie/format';
import {
  EndToEndMeter,
  manifestSha256,
  parseManifest,
  planExport,
  type ExpandedManifest,
  type LoadedManifest,
  type Policy,
} from '@ie/quant';
import { HAS_STORIES, REPO_ROOT, STORIES_DIR, STORIES_REASON } from '@ie/testing';
import { Engine, quantizeModel } from './index.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'ie-quantize-'));
const CALIB = readFileSync(join(REPO_ROOT, 'quant/calibration/default.txt'), 'utf8');
const DEFAULT_POLICY = readFileSync(join(REPO_ROOT, 'quant/q4_manifest.json'), 'utf8');

function policyText(edit: (p: Policy) => void = () => {}): string {
  const p = JSON.parse(DEFAULT_POLICY) as Policy;
  edit(p);
  return JSON.stringify(p);
}
const loaded = (text: string, file = 'policy.json'): LoadedManifest => ({
  manifest: parseManifest(text, file),
  file,
  sha256: manifestSha256(text),
});
const quantize = (dir: string, text: string, calib = CALIB) =>
  quantizeModel(dir, { policy: loaded(text), calibration: { text: calib, file: 'default.txt' } });

/** Exports `source` per `manifest` and returns the directory. */
async function exportPer(source: ReturnType<typeof synthModel>, manifest: ExpandedManifest | string): Promise<string> {
  const text = typeof manifest === 'string' ? manifest : JSON.stringify(manifest);
  const plan = planExport(loaded(text), source.config, source.tensors, { force: true });
  const d = tmp();
  await exportIebin(source, d, { converter: 'test', ...plan.options });
  return d;
}

/** Logits at every position of `ids` (a fresh sequence) from a model directory. */
async function logits(dir: string, ids: number[]): Promise<Float32Array[]> {
  await using e = await Engine.load(dir, { threads: 1 });
  return e.evaluate(ids);
}

function worstRelative(got: Float32Array[], want: Float32Array[]): number {
  let w = 0;
  for (let p = 0; p < want.length; p++) {
    const scale = want[p].reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    for (let i = 0; i < want[p].length; i++) w = Math.max(w, Math.abs(got[p][i] - want[p][i]) / scale);
  }
  return w;
}

describe('quantizeModel on synthetic models', () => {
  const shapes: Array<[string, Partial<ModelConfig>]> = [
    ['GQA 4/2', {}],
    ['Qwen2 MHA with q/k/v biases', { architecture: 'qwen2', attn_qkv_bias: true, n_kv_heads: 4, rope_style: 'rotate_half' }],
  ];

  it.each(shapes)(
    '%s: activation-aware folding is exact in float, and the exported model is the one the gate judged',
    async (_name, over) => {
      const config: ModelConfig = { ...SYNTH_PRESETS.tiny.config, ...over };
      const fpDir = tmp();
      await exportIebin(synthModel(config, { seed: 9 }), fpDir, { converter: 'test' });
      const text = policyText((p) => {
        p.defaults = { ...p.defaults, method: 'awq' };
        p.calibration = { sequence_length: 48, max_sequences: 2 };
        p.gate = { min_cosine: -1, min_snr_db: -100, max_kl: 100, min_top1: 0 }; // random weights: judge nothing here
      });
      const r = await quantize(fpDir, text);
      const m = r.manifest;
      expect(m.status).toBe('accepted');
      // The search found scaling worth doing somewhere, and recorded its folds.
      const folded = m.tensors.filter((t) => t.transforms?.length);
      expect(folded.length).toBeGreaterThan(0);
      // Every fold kind is exercised: into a norm, into up's rows, into v's rows (and v's bias).
      for (const site of ['attn_in', 'ffn_in', 'ffn_down_in', 'attn_out_in', 'attn_v_rows'])
        expect(
          Object.keys(m.scales).some((k) => k.endsWith(site)),
          site,
        ).toBe(true);
      for (const t of m.tensors.filter((t) => t.scheme === 'int4w')) expect(t.quality?.cosine).toBeGreaterThan(0.9);

      // The same folds without quantization give the FP model's logits: the rewrite is exact.
      const floatOnly = structuredClone(m);
      for (const t of floatOnly.tensors) {
        if (t.scheme !== 'int4w') continue;
        t.scheme = 'f32';
        for (const k of ['group_size', 'mode', 'scale_dtype', 'method', 'alpha'] as const) delete t[k];
      }
      const ids = [config.bos_id, ...Array.from({ length: 23 }, (_, i) => (i * 37 + 11) % config.vocab_size)];
      const fp = await logits(fpDir, ids);
      const folded32 = await logits(await exportPer(synthModel(config, { seed: 9 }), floatOnly), ids);
      expect(worstRelative(folded32, fp)).toBeLessThan(1e-4);

      // The exported quantized model reproduces the end-to-end figures the gate measured.
      const qDir = await exportPer(synthModel(config, { seed: 9 }), m);
      const cal = await (async () => {
        await using e = await Engine.load(fpDir, { threads: 1 });
        const t = e.tokenize(CALIB, { bos: false });
        return [
          [config.bos_id, ...t.slice(0, 47)],
          [config.bos_id, ...t.slice(47, 94)],
        ];
      })();
      const meter = new EndToEndMeter();
      for (const seq of cal) {
        const [a, b] = [await logits(fpDir, seq), await logits(qDir, seq)];
        for (let i = 0; i < seq.length; i++) meter.add(a[i], b[i]);
      }
      const e2e = meter.result();
      expect(e2e.positions).toBe(m.gate.end_to_end?.positions);
      expect(e2e.kl_mean).toBeCloseTo(m.gate.end_to_end?.kl_mean as number, 3);
    },
  );
});

describe('quantizeModel on an already-quantized model', () => {
  it('maps tensors stored in the asked encoding without requantizing, and the manifest parses', async () => {
    const src = synthModel('tiny', { seed: 12 });
    const q4 = policyText((p) => {
      p.rules = p.rules.map((r) => ({ ...r, group_size: 32, allow_padding: true }));
      p.gate = { min_cosine: -1, min_snr_db: -100, max_kl: 100, min_top1: 0 };
    });
    const dir = tmp();
    await exportIebin(src, dir, { converter: 'test', ...planExport(loaded(q4), src.config, src.tensors).options });
    const r = await quantize(dir, q4);
    const entries = r.manifest.tensors.filter((t) => t.scheme === 'int4w');
    expect(entries).toHaveLength(14);
    for (const e of entries) expect(e).toMatchObject({ source: { dtype: 'q4' }, group_size: 32, verdict: 'not_measured', quality: null });
    expect(entries.every((e) => e.method === undefined)).toBe(true);
    expect(parseManifest(r.json).kind).toBe('expanded');
    expect(r.endToEnd.kl_mean).toBe(0);
  });
});

describe.skipIf(!HAS_STORIES)(`quantizeModel on stories260K${STORIES_REASON}`, () => {
  let fpDir = '';
  const fp = async () => {
    if (!fpDir) {
      fpDir = tmp();
      const source = await openLlama2c(join(STORIES_DIR, 'stories260K.bin'), join(STORIES_DIR, 'tok512.bin'));
      await exportIebin(source, fpDir, { converter: 'test' });
      await source.close();
    }
    return fpDir;
  };

  it('the default int4w policy passes its gate, deterministically, and shrinks the weights 4x', async () => {
    const a = await quantize(await fp(), DEFAULT_POLICY);
    expect(a.accepted).toBe(true);
    expect(a.manifest.status).toBe('accepted');
    const measured = a.manifest.tensors.filter((t) => t.quality);
    expect(measured).toHaveLength(35);
    for (const t of measured) expect(t.quality?.cosine).toBeGreaterThan(0.99);
    expect(a.endToEnd.kl_mean).toBeLessThan(0.15);
    expect(a.endToEnd.top1).toBeGreaterThan(0.8);
    expect(a.bytesPerToken.before / a.bytesPerToken.after).toBeGreaterThan(3.9);
    const b = await quantize(await fp(), DEFAULT_POLICY);
    expect(b.json).toBe(a.json);
    // Without room to keep the FP logits, the FP model runs again beside the quantized one: same figures.
    const c = await quantizeModel(await fp(), {
      policy: loaded(DEFAULT_POLICY),
      calibration: { text: CALIB, file: 'default.txt' },
      logitsBudgetBytes: 0,
    });
    expect(c.json).toBe(a.json);
  });

  it('clip search and activation-aware scaling each measurably improve on RTN', async () => {
    const kl: Record<string, number> = {};
    for (const method of ['rtn', 'clip', 'awq'] as const) {
      const r = await quantize(
        await fp(),
        policyText((p) => (p.defaults = { ...p.defaults, method })),
      );
      kl[method] = r.endToEnd.kl_mean;
    }
    expect(kl.clip).toBeLessThan(kl.rtn * 0.97);
    expect(kl.awq).toBeLessThan(kl.clip);
  });

  it('a too-strict gate rejects, naming what failed', async () => {
    const r = await quantize(
      await fp(),
      policyText((p) => (p.gate = { ...p.gate, max_kl: 0.001, min_cosine: 0.9995 })),
    );
    expect(r.accepted).toBe(false);
    expect(r.manifest.status).toBe('rejected');
    expect(r.failures).toContain(`end to end: mean KL ${r.endToEnd.kl_mean.toFixed(5)} > max_kl 0.001`);
    expect(r.failures.some((f) => /^blk\.\d\.attn_v\.weight: cosine 0\.99\d+ < min_cosine 0\.9995$/.test(f))).toBe(true);
    expect(r.manifest.tensors.some((t) => t.verdict === 'fail')).toBe(true);
  });

  it('int8w per row passes its stricter gate', async () => {
    const r = await quantize(await fp(), readFileSync(join(REPO_ROOT, 'quant/q8_manifest.json'), 'utf8'));
    expect(r.accepted).toBe(true);
    expect(r.endToEnd.kl_mean).toBeLessThan(0.01);
    expect(r.endToEnd.top1).toBeGreaterThan(0.95);
  });

  it('refuses calibration text too short to measure anything', async () => {
    await expect(quantize(await fp(), DEFAULT_POLICY, 'Hi')).rejects.toMatchObject({
      code: 'QUANT_CALIBRATION',
      message: expect.stringMatching(/gives \d tokens/),
    });
  });
});
