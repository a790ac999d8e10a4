/** The float64 gpt-oss reference against the gpt-oss-tiny fixture's logits (OpenAI's model definition). */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { SHARED_DIR } from '@ie/testing';
import { GptOssReference, type GptOssRefConfig, decodeMxfp4Hf, loadGptOssHf, yarnInvFreq } from './gpt-oss-reference.js';

const GPTOSS_DIR = join(SHARED_DIR, 'models', 'gpt-oss-tiny');
const HAS_GPTOSS = existsSync(join(GPTOSS_DIR, 'hf', 'model.safetensors'));
const GPTOSS_REASON = HAS_GPTOSS ? '' : ` — SKIPPED: ${GPTOSS_DIR} not found (CI provides ../shared)`;
if (!HAS_GPTOSS) process.stderr.write(`[ie tests] ${GPTOSS_DIR} not found: the gpt-oss reference tests on gpt-oss-tiny are skipped\n`);

interface Case {
  input_ids: number[];
  logits: number[][];
  greedy: { n: number; tokens: number[] };
  continuation_logits: number[][];
  reference: { yarn_low: number; yarn_high: number; yarn_concentration: number; inv_freq: number[] };
}

const loadCase = (name: string): Case => JSON.parse(readFileSync(join(GPTOSS_DIR, `${name}.json`), 'utf8'));

/** Argmax, lowest index on ties. */
function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i] > x[best]) best = i;
  return best;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('decodeMxfp4Hf', () => {
  it('decodes low nibble to the even element, high nibble to the odd one, times 2^(scale-127)', () => {
    const blocks = new Uint8Array(16);
    blocks[0] = 0x8f; // element 0: q=15 (-6), element 1: q=8 (-0)
    blocks[1] = 0x21; // element 2: q=1 (0.5), element 3: q=2 (1)
    blocks[15] = 0x7e; // element 30: q=14 (-4), element 31: q=7 (6)
    const out = decodeMxfp4Hf(blocks, new Uint8Array([128]));
    expect(Array.from(out.subarray(0, 4))).toEqual([-12, -0, 1, 2]);
    expect(Object.is(out[1], -0)).toBe(true);
    expect([out[30], out[31]]).toEqual([-8, 12]);
    expect(() => decodeMxfp4Hf(blocks, new Uint8Array([255]))).toThrow(/NaN/);
  });
});

describe.skipIf(!HAS_GPTOSS)(`gpt-oss reference on gpt-oss-tiny${GPTOSS_REASON}`, () => {
  let config: GptOssRefConfig;
  let weights: Map<string, Float64Array>;
  const get = (n: string) => weights.get(n)!;

  beforeAll(() => {
    ({ config, weights } = loadGptOssHf(join(GPTOSS_DIR, 'hf')));
  });

  it('reads the config (alternating sliding layers, YaRN without truncation)', () => {
    expect(config.sliding_layers).toEqual([true, false, true, false]);
    expect(config.sliding_window).toBe(8);
    expect(config.yarn).toEqual({ factor: 32, original_context_length: 4096, beta_fast: 32, beta_slow: 1, truncate: false });
    expect([config.n_experts, config.experts_per_token, config.swiglu_limit]).toEqual([8, 4, 7]);
  });

  it('YaRN tables match the fixture reference', () => {
    const ref = loadCase('len5').reference;
    const y = yarnInvFreq(config);
    expect(y.low).toBeCloseTo(ref.yarn_low, 12);
    expect(y.high).toBeCloseTo(ref.yarn_high, 12);
    expect(y.concentration).toBeCloseTo(ref.yarn_concentration, 12);
    // The fixture's table is float32.
    expect(maxAbsDiff(y.invFreq, ref.inv_freq)).toBeLessThan(1e-7);
  });

  for (const name of ['len5', 'len40']) {
    it(`${name}: prompt logits, argmax per row and the 16-token greedy continuation`, () => {
      const c = loadCase(name);
      const m = new GptOssReference(config, get);
      let worst = 0;
      let last: Float64Array = new Float64Array(0);
      c.input_ids.forEach((t, i) => {
        last = m.step(t);
        const d = maxAbsDiff(last, c.logits[i]);
        worst = Math.max(worst, d);
        expect(d, `${name} row ${i}`).toBeLessThan(1e-3);
        expect(argmax(last), `${name} argmax row ${i}`).toBe(argmax(c.logits[i]));
      });
      const tokens: number[] = [];
      let worstCont = 0;
      for (let s = 0; s < c.greedy.n; s++) {
        worstCont = Math.max(worstCont, maxAbsDiff(last, c.continuation_logits[s]));
        tokens.push(argmax(last));
        if (s + 1 < c.greedy.n) last = m.step(tokens[s]);
      }
      expect(tokens).toEqual(c.greedy.tokens);
      expect(worstCont).toBeLessThan(1e-3);
      console.log(`[gpt-oss reference] ${name}: max |Δ| prompt ${worst.toExponential(3)}, continuation ${worstCont.toExponential(3)}`);

      // reset() starts the sequence over.
      m.reset();
      expect(maxAbsDiff(m.step(c.input_ids[0]), c.logits[0])).toBeLessThan(1e-3);
    });
  }

  it('a sliding layer sees exactly the last `window` positions (the current one included)', () => {
    const c = loadCase('len40');
    const W = config.sliding_window;
    expect(c.input_ids.length).toBeGreaterThan(W + 1);
    const windowed = new GptOssReference(config, get);
    const full = new GptOssReference({ ...config, sliding_layers: config.sliding_layers.map(() => false) }, get);
    for (let i = 0; i <= W; i++) {
      const a = windowed.step(c.input_ids[i]);
      const b = full.step(c.input_ids[i]);
      // Up to position W-1 the window covers everything; at position W it drops position 0.
      if (i < W) expect(maxAbsDiff(a, b), `row ${i}`).toBe(0);
      else expect(maxAbsDiff(a, b), `row ${i}`).toBeGreaterThan(1e-3);
    }
  });
});
