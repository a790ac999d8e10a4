import { existsSync, lstatSync, mkdtempSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SYNTH_PRESETS, expectedTensors, synthTensorValues, synthVocabulary, type ModelConfig } from '@ie/format';
import { HAS_STORIES, REPO_ROOT, STORIES_DIR, STORIES_REASON, buildGguf, llamaKv, quantizeQ4_0, runIe, sameBytes } from '@ie/testing';

const tmp = () => mkdtempSync(join(tmpdir(), 'ie-cli-q-'));
const ie = (...args: string[]) => runIe(args);
const POLICY = join(REPO_ROOT, 'quant/q4_manifest.json');
const CALIB = join(REPO_ROOT, 'quant/calibration/default.txt');

/** A policy file: the default one, edited. */
function policyFile(edit: (p: Record<string, any>) => void): string {
  const p = JSON.parse(readFileSync(POLICY, 'utf8'));
  edit(p);
  const f = join(tmp(), 'policy.json');
  writeFileSync(f, JSON.stringify(p));
  return f;
}

describe('ie quantize, convert --q4-map and validate --manifest on a synthetic model', () => {
  // Random weights quantize worse than trained ones: this policy's gate is loose, the strict one below is not.
  const loose = () => policyFile((p) => (p.gate = { min_cosine: 0.9, min_snr_db: 5, max_kl: 1, min_top1: 0.3 }));
  let made: { iebin: string; hf: string; manifest: string } | undefined;
  const model = () => {
    if (!made) {
      const iebin = tmp();
      const hf = tmp();
      expect(ie('synth', '--preset', 'tiny', '--seed', '4', '--out-dir', hf, '--format', 'hf').code).toBe(0);
      expect(ie('convert', '--hf-dir', hf, '--out-dir', iebin, '--quiet').code).toBe(0);
      const manifest = join(tmp(), 'm.json');
      const r = ie('quantize', iebin, '--policy', loose(), '--out', manifest, '--calib', CALIB, '--quiet');
      expect(r.code, r.err + r.out).toBe(0);
      made = { iebin, hf, manifest };
    }
    return made;
  };

  it('writes an accepted manifest, prints the table, and the HF source exports per it', () => {
    const { hf, manifest } = model();
    const m = JSON.parse(readFileSync(manifest, 'utf8'));
    expect(m.kind).toBe('expanded');
    expect(m.status).toBe('accepted');
    expect(m.tensors.filter((t: { scheme: string }) => t.scheme === 'int4w')).toHaveLength(14);
    const out = tmp();
    const c = ie('convert', '--hf-dir', hf, '--out-dir', out, '--q4-map', manifest, '--quiet');
    expect(c.code, c.err).toBe(0);
    expect(c.out).toMatch(/packed per .*m\.json \(expanded, accepted, sha256 [0-9a-f]{12}…\): 14 int4w/);
    const v = ie('validate', out, '--manifest', manifest, '--deep');
    expect(v.code, v.out).toBe(0);
    expect(v.out).toContain('manifest ok: every tensor');
    // The same export again is byte-identical.
    const again = tmp();
    expect(ie('convert', '--hf-dir', hf, '--out-dir', again, '--q4-map', manifest, '--quiet').code).toBe(0);
    expect(sameBytes(readFileSync(join(out, 'model.ie.bin')), readFileSync(join(again, 'model.ie.bin')))).toBe(true);
    expect(readFileSync(join(out, 'model.ie.json'), 'utf8')).toBe(readFileSync(join(again, 'model.ie.json'), 'utf8'));
    const g = ie('generate', out, 'abc', '--max-tokens', '4', '--json');
    expect(g.code, g.err).toBe(0);
    expect(JSON.parse(g.out).precision).toBe('int4w');
  });

  it('the policy form is measured before anything is written: the gate refuses, --no-gate exports unmeasured and says so, a passing gate is recorded', () => {
    const { hf, iebin } = model();
    // The default gate refuses random weights at int4: exit 5, nothing written, no scratch left beside.
    const refused = tmp();
    const r = ie('convert', '--hf-dir', hf, '--out-dir', refused, '--q4-map', POLICY, '--quiet');
    expect(r.code, r.err + r.out).toBe(5);
    expect(r.out).toMatch(/fails: end to end: top-1 agreement/);
    expect(r.err).toContain('REJECTED: ');
    expect(readdirSync(refused)).toEqual([]);
    expect(readdirSync(join(refused, '..')).filter((n) => n.includes('.gate-'))).toEqual([]);
    // --no-gate: exported unmeasured, loudly, and recorded as skipped.
    const out = tmp();
    const c = ie('convert', '--hf-dir', hf, '--out-dir', out, '--q4-map', POLICY, '--no-gate', '--quiet');
    expect(c.code, c.err).toBe(0);
    expect(c.err).toContain('WARNING: --no-gate');
    expect(c.out).toMatch(/\(policy, not measured, sha256 [0-9a-f]{12}…\): 14 int4w/);
    expect(JSON.parse(readFileSync(join(out, 'model.ie.json'), 'utf8')).quantization.gate).toMatchObject({ status: 'skipped' });
    expect(ie('validate', out, '--manifest', POLICY).code).toBe(0);
    // A gate the model passes: measured at convert time, its figures in model.ie.json.
    const gated = tmp();
    const g = ie('convert', '--hf-dir', hf, '--out-dir', gated, '--q4-map', loose(), '--calib', CALIB, '--quiet');
    expect(g.code, g.err + g.out).toBe(0);
    expect(g.out).toMatch(/gate on default\.txt: mean KL [\d.]+ nats/);
    expect(g.out).toMatch(/measured now, gate passed, sha256 [0-9a-f]{12}…\): 14 int4w/);
    const rec = JSON.parse(readFileSync(join(gated, 'model.ie.json'), 'utf8')).quantization;
    expect(rec.manifest).toMatchObject({ kind: 'expanded', status: 'accepted' });
    expect(rec.gate.end_to_end.positions).toBeGreaterThan(0);
    expect(rec.gate.failures).toEqual([]);
    // Flags that do not fit the manifest kind are refused by name.
    expect(ie('convert', '--hf-dir', hf, '--out-dir', tmp(), '--no-gate').err).toContain('--no-gate goes with --q4-map');
    expect(ie('convert', '--hf-dir', hf, '--out-dir', tmp(), '--q4-map', POLICY, '--no-gate', '--calib', CALIB).code).toBe(2);
    // The FP model is not what the policy says: every projection is reported.
    const v = ie('validate', iebin, '--manifest', POLICY);
    expect(v.code).toBe(4);
    expect(v.out.match(/^mismatch: /gm)).toHaveLength(14);
    expect(v.out).toContain('mismatch: blk.0.attn_q.weight: manifest says int4w symmetric g64 f16 scales, the model has f32');
    expect(v.out).toContain('note: model.ie.json records no quantization manifest');
  });

  it('a too-strict gate fails with the table and writes nothing; --force writes it rejected, and export refuses it unless forced', () => {
    const { iebin, hf } = model();
    const strict = policyFile((p) => (p.gate = { min_cosine: 0.99999, max_kl: 0.00001 }));
    const out = join(tmp(), 'm.json');
    const r = ie('quantize', iebin, '--policy', strict, '--out', out, '--calib', CALIB, '--quiet');
    expect(r.code).toBe(5);
    expect(r.out).toMatch(/^tensor\s+scheme\s+method\s+cosine\s+SNR dB\s+verdict$/m);
    expect(r.out).toMatch(/blk\.0\.attn_q\.weight\s+int4w g64 sym\s+clip\s+0\.\d{5}\s+[\d.]+\s+fail/);
    expect(r.out).toMatch(/fails: end to end: mean KL [\d.]+ > max_kl 0\.00001/);
    expect(r.out).toContain('REJECTED: no manifest written');
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(join(out, '..'))).toEqual([]);

    const forced = ie('quantize', iebin, '--policy', strict, '--out', out, '--calib', CALIB, '--force', '--quiet');
    expect(forced.code).toBe(5);
    expect(JSON.parse(readFileSync(out, 'utf8')).status).toBe('rejected');
    const dir = join(tmp(), 'model');
    const refused = ie('convert', '--hf-dir', hf, '--out-dir', dir, '--q4-map', out);
    expect(refused.code).toBe(3);
    expect(refused.err).toMatch(
      /failed its calibration gate \(status "rejected"\); pass --force .* \[QUANT_MANIFEST_REJECTED\]\n {2}gate: /,
    );
    expect(existsSync(dir)).toBe(false);
    const ok = ie('convert', '--hf-dir', hf, '--out-dir', dir, '--q4-map', out, '--force', '--quiet');
    expect(ok.code, ok.err).toBe(0);
    expect(ok.out).toContain('warning: the manifest failed its calibration gate');
  });

  it('--out replaces a symlink planted at the manifest path and never writes through it', () => {
    const { iebin } = model();
    const victim = join(tmp(), 'victim.txt');
    writeFileSync(victim, 'precious');
    const d = tmp();
    const out = join(d, 'm.json');
    symlinkSync(victim, out);
    const r = ie('quantize', iebin, '--policy', loose(), '--out', out, '--calib', CALIB, '--quiet');
    expect(r.code, r.err + r.out).toBe(0);
    expect(readFileSync(victim, 'utf8')).toBe('precious');
    expect(lstatSync(out).isSymbolicLink()).toBe(false);
    expect(JSON.parse(readFileSync(out, 'utf8')).status).toBe('accepted');
    // No temporary file is left beside it.
    expect(readdirSync(d)).toEqual(['m.json']);
  });

  it('a malformed policy lists every error and writes nothing', () => {
    const { iebin } = model();
    const bad = policyFile((p) => {
      p.rules[0].group_size = 48;
      p.rules[1].scheme = 'int3w';
      p.gate.max_kl = -1;
      p.calibration.seqlen = 5;
    });
    const out = join(tmp(), 'm.json');
    const r = ie('quantize', iebin, '--policy', bad, '--out', out);
    expect(r.code).toBe(3);
    const lines = r.err.trim().split('\n');
    expect(lines[0]).toMatch(/^ie: .*policy\.json: 4 problems \[QUANT_MANIFEST_INVALID\]$/);
    expect(lines.slice(1).sort()).toEqual(
      [
        '  calibration.seqlen: is not a manifest field (check the spelling against quant/q4_manifest.schema.json)',
        '  gate.max_kl: must be >= 0',
        '  rules[0].group_size: must be one of 32, 64, 128',
        '  rules[1].scheme: must be one of "int4w", "int8w", "f32", "f16", "bf16", "keep"',
      ].sort(),
    );
    expect(existsSync(out)).toBe(false);
    // Rules that cannot apply to this model are listed too, before any work.
    const unfit = policyFile((p) =>
      p.rules.push(
        { match: 'blk.9.attn_q.weight', scheme: 'keep' },
        { match: 'blk.*.ffn_down.weight', scheme: 'int8w', granularity: 'per_group', group_size: 128 },
      ),
    );
    const u = ie('quantize', iebin, '--policy', unfit, '--out', out, '--calib', CALIB);
    expect(u.code).toBe(3);
    expect(u.err).toContain('the policy cannot be applied to this model (2 problems) [QUANT_MANIFEST_INVALID]');
    expect(u.err).toContain('rules[2].match: names blk.9.attn_q.weight, which this model does not have');
    expect(u.err).toContain('rules[3].match: "blk.*.ffn_down.weight" only matches tensors that earlier rules already decide');
  });

  it('exporting another model with the manifest fails cleanly', () => {
    const { manifest } = model();
    const other = tmp();
    expect(ie('synth', '--preset', 'tiny', '--seed', '5', '--out-dir', other, '--format', 'hf').code).toBe(0);
    const dir = join(tmp(), 'model');
    const r = ie('convert', '--hf-dir', other, '--out-dir', dir, '--q4-map', manifest, '--quiet');
    expect(r.code).toBe(3);
    expect(r.err).toMatch(
      /^ie: .*m\.json was made for another model: its weights differ; run `ie quantize` on this model \[QUANT_MANIFEST_MISMATCH\]/,
    );
    expect(existsSync(join(dir, 'model.ie.json'))).toBe(false);
    expect(existsSync(dir) ? readdirSync(dir) : []).toEqual([]);
    // Another shape is caught before anything is read.
    const big = tmp();
    expect(ie('synth', '--preset', 'stories15m', '--out-dir', big, '--format', 'hf').code).toBe(0);
    const s = ie('convert', '--hf-dir', big, '--out-dir', dir, '--q4-map', manifest, '--quiet');
    expect(s.code).toBe(3);
    expect(s.err).toMatch(/was made for another model \(\d+ differences\).*\n {2}model\.config\.dim: is 64; this model's is 288/);
  });
});

describe('a llama.cpp Q4_0 model', () => {
  it('maps onto int4w g32 through quantize and export without requantizing; another group size is refused', () => {
    const config: ModelConfig = { ...SYNTH_PRESETS.tiny.config, ffn_dim: 192, vocab_size: 300 };
    const vocab = synthVocabulary(config.vocab_size);
    const tensors = expectedTensors(config).map((t, i) => {
      const v = synthTensorValues(config, 3, i);
      const q4 = t.role === 'projection';
      return { name: t.name, ne: [...t.shape].reverse(), type: q4 ? 2 : 0, data: q4 ? quantizeQ4_0(v) : new Uint8Array(v.buffer) };
    });
    const d = tmp();
    const gguf = join(d, 'm.gguf');
    writeFileSync(gguf, buildGguf(llamaKv(config, vocab.pieces, vocab.types), tensors));
    const fp = join(d, 'as-is');
    expect(ie('convert', '--gguf', gguf, '--out-dir', fp, '--quiet').code).toBe(0);
    const g32 = policyFile((p) => {
      for (const r of p.rules) r.group_size = 32;
      p.gate = { min_cosine: 0.9, min_snr_db: 5, max_kl: 1, min_top1: 0.3 };
    });
    const manifest = join(d, 'm.json');
    const q = ie('quantize', fp, '--policy', g32, '--out', manifest, '--calib', CALIB, '--quiet');
    expect(q.code, q.out + q.err).toBe(0);
    expect(q.out).toMatch(/mean KL 0\.00000 nats/);
    const m = JSON.parse(readFileSync(manifest, 'utf8'));
    expect(
      m.tensors.filter((t: { source: { dtype: string }; scheme: string }) => t.source.dtype === 'q4' && t.scheme === 'int4w'),
    ).toHaveLength(14);
    const out = join(d, 'per-manifest');
    const c = ie('convert', '--gguf', gguf, '--out-dir', out, '--q4-map', manifest, '--quiet');
    expect(c.code, c.err).toBe(0);
    expect(sameBytes(readFileSync(join(out, 'model.ie.bin')), readFileSync(join(fp, 'model.ie.bin')))).toBe(true);
    const g64 = ie('convert', '--gguf', gguf, '--out-dir', join(d, 'g64'), '--q4-map', POLICY, '--quiet');
    expect(g64.code).toBe(3);
    expect(g64.err).toContain(
      'is already int4w symmetric g32 f16 scales in the source; requantizing it to int4w symmetric g64 f16 scales would compound rounding error',
    );
  });
});

describe.skipIf(!HAS_STORIES)(`stories260K: quantize, export from llama2c and GGUF, validate, generate${STORIES_REASON}`, () => {
  it('the default int4w policy passes its gate and the exported model tells a story', () => {
    const fp = tmp();
    const l2c = ['--llama2c', join(STORIES_DIR, 'stories260K.bin'), '--tokenizer', join(STORIES_DIR, 'tok512.bin')];
    expect(ie('convert', ...l2c, '--out-dir', fp, '--quiet').code).toBe(0);
    const manifest = join(tmp(), 'stories_q4.json');
    const q = ie('quantize', fp, '--policy', POLICY, '--out', manifest, '--quiet');
    expect(q.code, q.out + q.err).toBe(0);
    expect(q.out).toMatch(/end to end over 1024 positions \(8 sequences of default\.txt\): mean KL 0\.\d+ nats/);
    expect(q.out).toMatch(/weights per token: 1016 KiB -> 252 KiB \(4\.04x smaller\)/);
    expect(q.out).toContain('accepted: wrote');
    const a = tmp();
    const b = tmp();
    expect(ie('convert', ...l2c, '--out-dir', a, '--q4-map', manifest, '--quiet').code).toBe(0);
    expect(ie('convert', '--gguf', join(STORIES_DIR, 'stories260K.gguf'), '--out-dir', b, '--q4-map', manifest, '--quiet').code).toBe(0);
    expect(sameBytes(readFileSync(join(a, 'model.ie.bin')), readFileSync(join(b, 'model.ie.bin')))).toBe(true);
    expect(ie('validate', a, '--manifest', manifest, '--deep').code).toBe(0);
    const g = ie('generate', a, 'Once upon a time', '--max-tokens', '40', '--temperature', '0');
    expect(g.code, g.err).toBe(0);
    expect(g.out).toMatch(/^Once upon a time, there was a little girl named Lily\./);
    expect(g.err).toMatch(/int4w on \d+ thread/);
  });
});
