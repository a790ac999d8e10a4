#!/usr/bin/env node
// Quantization quality: RTN vs clip search vs activation-aware (awq) at group sizes 32/64/128,
// and int8w, on the real stories260K model. For each variant `ie quantize`'s driver runs the
// default policy with that method and group size; the figures are its gate measurements on
// the calibration text, plus KL and top-1 agreement on held-out text measured by exporting the
// model per the manifest and running both models through the engine.
//
//   pnpm bench:quant                       (needs ../shared/models/stories260K)
//   VARIANTS=int4w-g64-clip,int8w-row-rtn node benchmarks/quant.mjs
import { readFileSync, mkdtempSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { exportIebin, openLlama2c } from '@ie/format';
import { EndToEndMeter, manifestSha256, parseManifest, planExport } from '@ie/quant';
import { Engine, quantizeModel } from '@ie/runtime';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const STORIES = join(process.env.IE_SHARED_DIR ?? join(root, '..', 'shared'), 'models', 'stories260K');
const source = () => openLlama2c(join(STORIES, 'stories260K.bin'), join(STORIES, 'tok512.bin'));
const basePolicy = JSON.parse(readFileSync(join(root, 'quant', 'q4_manifest.json'), 'utf8'));
const calib = readFileSync(join(root, 'quant', 'calibration', 'default.txt'), 'utf8');
const heldout = readFileSync(join(here, 'heldout_stories.txt'), 'utf8');
const ALL = ['int4w-g32', 'int4w-g64', 'int4w-g128']
  .flatMap((v) => ['rtn', 'clip', 'awq'].map((m) => `${v}-${m}`))
  .concat(['int8w-row-rtn', 'int8w-row-clip', 'int8w-row-awq']);
const VARIANTS = process.env.VARIANTS ? process.env.VARIANTS.split(',') : ALL;

const tmp = () => mkdtempSync(join(tmpdir(), 'ie-bench-quant-'));
const fpDir = tmp();
{
  const s = await source();
  await exportIebin(s, fpDir, { converter: 'bench' });
  await s.close();
}

function policyFor(variant) {
  const [scheme, g, method] = variant.split('-');
  const p = structuredClone(basePolicy);
  p.defaults = { ...p.defaults, method };
  for (const r of p.rules) {
    if (scheme === 'int8w') {
      Object.assign(r, { scheme: 'int8w', granularity: 'per_row' });
      delete r.group_size;
      delete r.mode;
    } else r.group_size = Number(g.slice(1));
  }
  // Measure, do not judge: every variant gets a manifest.
  p.gate = { min_cosine: -1, min_snr_db: -1000, max_kl: 1000, min_top1: 0 };
  const text = JSON.stringify(p);
  return { manifest: parseManifest(text, `${variant}.json`), file: `${variant}.json`, sha256: manifestSha256(text) };
}

/** Held-out sequences: BOS + 127 tokens each. */
async function heldoutSequences() {
  const e = await Engine.load(fpDir, { threads: 1 });
  const ids = e.tokenize(heldout, { bos: false });
  const out = [];
  for (let i = 0; i + 1 < ids.length && out.length < 8; i += 127) out.push([e.config.bos_id, ...ids.slice(i, i + 127)]);
  await e.dispose();
  return out;
}

async function heldoutFigures(qDir, seqs) {
  const fp = await Engine.load(fpDir, { threads: 1 });
  const q = await Engine.load(qDir, { threads: 1 });
  const meter = new EndToEndMeter();
  for (const s of seqs) {
    const [a, b] = [await fp.evaluate(s), await q.evaluate(s)];
    for (let i = 0; i < s.length; i++) meter.add(a[i], b[i]);
  }
  await fp.dispose();
  await q.dispose();
  return meter.result();
}

/** How many of 200 greedy tokens after "Once upon a time" match the FP model's. */
async function greedyAgreement(qDir) {
  const gen = async (dir) => {
    const e = await Engine.load(dir, { threads: 1 });
    const { tokens } = await e.complete('Once upon a time', { temperature: 0, maxTokens: 200 });
    await e.dispose();
    return tokens;
  };
  const [a, b] = [await gen(fpDir), await gen(qDir)];
  let n = 0;
  while (n < a.length && a[n] === b[n]) n++;
  return n;
}

const seqs = await heldoutSequences();
const rows = [];
for (const v of VARIANTS) {
  const policy = policyFor(v);
  const t0 = performance.now();
  const r = await quantizeModel(fpDir, { policy, calibration: { text: calib, file: 'default.txt' } });
  const quantizeS = (performance.now() - t0) / 1000;
  const m = r.manifest;
  const loaded = { manifest: m, file: `${v}.expanded.json`, sha256: manifestSha256(r.json) };
  const s = await source();
  const qDir = tmp();
  await exportIebin(s, qDir, { converter: 'bench', ...planExport(loaded, s.config, s.tensors).options });
  await s.close();
  const held = await heldoutFigures(qDir, seqs);
  const cos = m.tensors.filter((t) => t.quality).map((t) => t.quality.cosine);
  const snr = m.tensors.filter((t) => t.quality).map((t) => t.quality.snr_db);
  rows.push({
    variant: v,
    cosineMin: Math.min(...cos),
    cosineMax: Math.max(...cos),
    snrMin: Math.min(...snr),
    snrMax: Math.max(...snr),
    calibKl: r.endToEnd.kl_mean,
    calibTop1: r.endToEnd.top1,
    heldoutKl: held.kl_mean,
    heldoutTop1: held.top1,
    greedyAgree200: await greedyAgreement(qDir),
    bytesPerTokenBefore: r.bytesPerToken.before,
    bytesPerTokenAfter: r.bytesPerToken.after,
    quantizeS: +quantizeS.toFixed(2),
  });
  const x = rows[rows.length - 1];
  console.error(`${v}: KL ${x.calibKl.toFixed(4)} / held-out ${x.heldoutKl.toFixed(4)}`);
}

const f = (x, d) => x.toFixed(d);
console.log(
  `stories260K (fp32 source), calibration: quant/calibration/default.txt (${seqs.length} held-out sequences from benchmarks/heldout_stories.txt)`,
);
console.log(
  '| variant | cosine min..max | SNR dB min..max | KL calib | top-1 calib | KL held-out | top-1 held-out | greedy agree /200 | weight bytes/token | quantize s |',
);
console.log('|---|---|---|---|---|---|---|---|---|---|');
for (const r of rows) {
  console.log(
    `| ${r.variant} | ${f(r.cosineMin, 4)}..${f(r.cosineMax, 4)} | ${f(r.snrMin, 1)}..${f(r.snrMax, 1)} | ${f(r.calibKl, 4)} | ${f(r.calibTop1 * 100, 1)}% | ${f(r.heldoutKl, 4)} | ${f(r.heldoutTop1 * 100, 1)}% | ${r.greedyAgree200} | ${r.bytesPerTokenBefore} → ${r.bytesPerTokenAfter} (${f(r.bytesPerTokenBefore / r.bytesPerTokenAfter, 2)}x) | ${r.quantizeS} |`,
  );
}
const out = join(here, 'reports', `quant-stories260K-${new Date().toISOString().slice(0, 10)}.json`);
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, `${JSON.stringify(rows, null, 2)}\n`);
console.error(`wrote ${out}`);
