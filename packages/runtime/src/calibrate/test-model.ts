/** Test helpers for the calibration stages: a seeded synthetic model exported once per shape and opened as quantize opens it. */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SYNTH_PRESETS, exportIebin, synthModel, type ModelConfig } from '@ie/format';
import { manifestSha256, parseManifest, type LoadedManifest, type Policy } from '@ie/quant';
import { REPO_ROOT } from '@ie/testing';
import { openMapped, type MappedModel } from '../load.js';

export const CALIB_TEXT = readFileSync(join(REPO_ROOT, 'quant/calibration/default.txt'), 'utf8');
/** Two short token sequences (BOS first) of the tiny vocabulary, for the stages that run the model over calibration text. */
export const CALIB_SEQUENCES: number[][] = [
  [1, 40, 41, 300, 12, 9, 77],
  [1, 500, 3, 3, 18],
];
const DEFAULT_POLICY = readFileSync(join(REPO_ROOT, 'quant/q4_manifest.json'), 'utf8');

/** The tiny preset (dim 64, 2 layers, 4 heads / 2 KV heads, ffn 176, vocab 512) with `over` applied. */
export const tinyConfig = (over: Partial<ModelConfig> = {}): ModelConfig => ({ ...SYNTH_PRESETS.tiny.config, ...over });

const dirs = new Map<string, string>();

/** A directory holding the seeded synthetic model of `config` (exported once per config and seed). */
export async function synthDir(config: ModelConfig, seed = 9): Promise<string> {
  const key = `${seed}:${JSON.stringify(config)}`;
  let d = dirs.get(key);
  if (!d) {
    d = mkdtempSync(join(tmpdir(), 'ie-calibrate-'));
    await exportIebin(synthModel(config, { seed }), d, { converter: 'test' });
    dirs.set(key, d);
  }
  return d;
}

/** Opens the synthetic model as quantize does (one thread: results do not depend on it). */
export async function openSynth(config: ModelConfig = tinyConfig(), seed = 9): Promise<MappedModel> {
  return openMapped(await synthDir(config, seed), { context: { threads: 1 } });
}

/** The shipped int4w policy with `edit` applied, as quantize receives it. */
export function loadedPolicy(edit: (p: Policy) => void = () => {}): LoadedManifest {
  const p = JSON.parse(DEFAULT_POLICY) as Policy;
  edit(p);
  const text = JSON.stringify(p);
  return { manifest: parseManifest(text, 'policy.json'), file: 'policy.json', sha256: manifestSha256(text) };
}
