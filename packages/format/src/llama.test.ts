import { describe, expect, it } from 'vitest';
import { configProblems, type ModelConfig } from './llama.js';
import { SYNTH_PRESETS } from './synth.js';

const tiny: ModelConfig = SYNTH_PRESETS.tiny.config;

describe('configProblems', () => {
  it('is empty for a consistent config', () => {
    expect(configProblems(tiny)).toEqual([]);
  });

  it('reports sizes alone while any is out of range (nothing else is checked against them)', () => {
    expect(configProblems({ ...tiny, n_layers: 1025, head_dim: 0, eos_id: 9999, norm_eps: 3 })).toEqual([
      ['n_layers', 'must be an integer in 1..1024, got 1025'],
      ['head_dim', 'must be an integer in 1..65536, got 0'],
    ]);
    expect(configProblems({ ...tiny, n_heads: 4096, head_dim: 512 })).toEqual([
      ['head_dim', 'n_heads x head_dim is 2097152, more than 1048576'],
    ]);
  });

  it('lists every other problem in a fixed order: numbers and ids, sliding window, RoPE scaling, experts', () => {
    const c = {
      ...tiny,
      n_kv_heads: 3,
      norm_eps: 0,
      stop_ids: [5, 600],
      sliding_window: 0,
      sliding_layers: [true],
      rope_scaling: { type: 'llama3', factor: 8, low_freq_factor: 4, high_freq_factor: 2, original_context_length: 8192 },
      moe: { n_experts: 4, experts_per_token: 5, swiglu_limit: 7 },
    } as ModelConfig;
    expect(configProblems(c)).toEqual([
      ['n_kv_heads', 'n_heads (4) must be a multiple of n_kv_heads (3)'],
      ['norm_eps', 'must be in (0, 1), got 0'],
      ['stop_ids[1]', 'must be a token id below vocab_size 512, got 600'],
      ['sliding_window', 'must be null or an integer in 1..16777216, got 0'],
      ['sliding_layers', 'must be null or 2 booleans (one per layer)'],
      ['rope_scaling.high_freq_factor', 'must exceed low_freq_factor'],
      ['moe.experts_per_token', 'must be an integer in 1..n_experts (4), got 5'],
      ['moe', 'experts are supported for gpt-oss only, not llama'],
    ]);
  });

  it("names EOS before BOS: where BOS is EOS's id (a gpt-oss file with no BOS), the problem is EOS's", () => {
    expect(configProblems({ ...tiny, bos_id: 600, eos_id: 600 } as ModelConfig)).toEqual([
      ['eos_id', 'must be a token id below vocab_size 512, got 600'],
      ['bos_id', 'must be a token id below vocab_size 512, got 600'],
    ]);
  });

  it("checks YaRN's range and betas, and that gpt-oss has experts", () => {
    const c = {
      ...tiny,
      architecture: 'gpt-oss',
      rope_scaling: { type: 'yarn', factor: 0.5, original_context_length: 4096.5, beta_fast: 1, beta_slow: 32, truncate: 'no' },
    } as unknown as ModelConfig;
    expect(configProblems(c)).toEqual([
      ['rope_scaling.original_context_length', 'must be an integer'],
      ['rope_scaling.factor', 'must be at least 1, got 0.5'],
      ['rope_scaling.beta_fast', 'must exceed beta_slow (32), got 1'],
      ['rope_scaling.truncate', 'must be true or false'],
      ['moe', 'gpt-oss is a mixture of experts; moe must be set'],
    ]);
  });
});
