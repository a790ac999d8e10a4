/**
 * A float64 gpt-oss forward pass in plain TypeScript, written from the model definition (OpenAI's
 * reference, gpt_oss/torch/model.py) and independent of the kernels: the yardstick for the engine's
 * gpt-oss logits. Weights come by canonical (GGUF-style) name, row-major, as float64.
 *
 * Also here: a minimal reader for the Hugging Face checkpoint form (safetensors with BF16 tensors and
 * MXFP4 `*_blocks` / `*_scales` experts), so tests can run the reference without the format package.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

export interface GptOssRefConfig {
  dim: number;
  n_layers: number;
  n_heads: number;
  n_kv_heads: number;
  head_dim: number;
  /** One expert's intermediate size. */
  ffn_dim: number;
  vocab_size: number;
  rope_theta: number;
  norm_eps: number;
  sliding_window: number;
  /** Per layer: whether it attends only to the last `sliding_window` positions (the current one included). */
  sliding_layers: boolean[];
  yarn: { factor: number; original_context_length: number; beta_fast: number; beta_slow: number; truncate: boolean };
  n_experts: number;
  experts_per_token: number;
  swiglu_limit: number;
}

/** The YaRN rotary tables' parameters: per-pair inverse frequencies (hd/2 of them) and the cos/sin scale. */
export function yarnInvFreq(c: GptOssRefConfig): { invFreq: Float64Array; concentration: number; low: number; high: number } {
  const hd = c.head_dim;
  const half = hd / 2;
  const { factor, original_context_length: orig, beta_fast, beta_slow, truncate } = c.yarn;
  const invFreq = new Float64Array(half);
  if (!(factor > 1)) {
    for (let i = 0; i < half; i++) invFreq[i] = c.rope_theta ** (-(2 * i) / hd);
    return { invFreq, concentration: 1, low: 0, high: 0 };
  }
  let low = (half * Math.log(orig / (beta_fast * 2 * Math.PI))) / Math.log(c.rope_theta);
  let high = (half * Math.log(orig / (beta_slow * 2 * Math.PI))) / Math.log(c.rope_theta);
  if (truncate) {
    low = Math.floor(low);
    high = Math.ceil(high);
  }
  const concentration = 0.1 * Math.log(factor) + 1;
  for (let i = 0; i < half; i++) {
    const freq = c.rope_theta ** (-(2 * i) / hd);
    // high === low only with truncate rounding both to one integer; a step ramp then (as HF's +0.001 guard).
    const ramp = Math.min(1, Math.max(0, (i - low) / (high === low ? 0.001 : high - low)));
    invFreq[i] = (freq / factor) * ramp + freq * (1 - ramp);
  }
  return { invFreq, concentration, low, high };
}

/** The canonical tensor names of one gpt-oss model. */
export function gptOssTensorNames(c: GptOssRefConfig): string[] {
  const names = ['token_embd.weight', 'output_norm.weight', 'output.weight'];
  for (let l = 0; l < c.n_layers; l++) {
    for (const n of [
      'attn_norm.weight',
      'attn_q.weight',
      'attn_q.bias',
      'attn_k.weight',
      'attn_k.bias',
      'attn_v.weight',
      'attn_v.bias',
      'attn_output.weight',
      'attn_output.bias',
      'attn_sinks.weight',
      'ffn_norm.weight',
      'ffn_gate_inp.weight',
      'ffn_gate_inp.bias',
      'ffn_gate_exps.weight',
      'ffn_gate_exps.bias',
      'ffn_up_exps.weight',
      'ffn_up_exps.bias',
      'ffn_down_exps.weight',
      'ffn_down_exps.bias',
    ])
      names.push(`blk.${l}.${n}`);
  }
  return names;
}

/** The expected element count of each canonical tensor. */
function expectedSize(c: GptOssRefConfig, name: string): number {
  const { dim: D, head_dim: hd, n_heads: H, n_kv_heads: KV, ffn_dim: F, n_experts: E, vocab_size: V } = c;
  const n = name.replace(/^blk\.\d+\./, '');
  const sizes: Record<string, number> = {
    'token_embd.weight': V * D,
    'output.weight': V * D,
    'output_norm.weight': D,
    'attn_norm.weight': D,
    'attn_q.weight': H * hd * D,
    'attn_q.bias': H * hd,
    'attn_k.weight': KV * hd * D,
    'attn_k.bias': KV * hd,
    'attn_v.weight': KV * hd * D,
    'attn_v.bias': KV * hd,
    'attn_output.weight': D * H * hd,
    'attn_output.bias': D,
    'attn_sinks.weight': H,
    'ffn_norm.weight': D,
    'ffn_gate_inp.weight': E * D,
    'ffn_gate_inp.bias': E,
    'ffn_gate_exps.weight': E * F * D,
    'ffn_up_exps.weight': E * F * D,
    'ffn_down_exps.weight': E * D * F,
    'ffn_gate_exps.bias': E * F,
    'ffn_up_exps.bias': E * F,
    'ffn_down_exps.bias': E * D,
  };
  return sizes[n];
}

/** y = W x (+ b), W row-major [rows, x.length], optionally the `off`-th matrix of a stack. */
function matvec(w: Float64Array, x: Float64Array, rows: number, bias?: Float64Array, off = 0, boff = 0): Float64Array {
  const cols = x.length;
  const y = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    const base = off + r * cols;
    for (let k = 0; k < cols; k++) s += w[base + k] * x[k];
    y[r] = bias ? s + bias[boff + r] : s;
  }
  return y;
}

export class GptOssReference {
  private readonly w = new Map<string, Float64Array>();
  private readonly cos: Float64Array;
  private readonly sin: Float64Array;
  private readonly invFreq: Float64Array;
  private readonly concentration: number;
  /** Per layer, per position: the roped K and the V of all KV heads. */
  private k: Float64Array[][] = [];
  private v: Float64Array[][] = [];
  private pos = 0;

  constructor(
    readonly config: GptOssRefConfig,
    weights: (name: string) => Float64Array,
  ) {
    const c = config;
    if (c.sliding_layers.length !== c.n_layers)
      throw new Error(`sliding_layers has ${c.sliding_layers.length} entries, want ${c.n_layers}`);
    if (c.n_heads % c.n_kv_heads !== 0) throw new Error(`n_heads ${c.n_heads} not a multiple of n_kv_heads ${c.n_kv_heads}`);
    if (c.experts_per_token > c.n_experts) throw new Error(`experts_per_token ${c.experts_per_token} > n_experts ${c.n_experts}`);
    for (const name of gptOssTensorNames(c)) {
      const t = weights(name);
      const want = expectedSize(c, name);
      if (!t || t.length !== want) throw new Error(`${name}: ${t ? t.length : 'no'} elements, want ${want}`);
      this.w.set(name, t);
    }
    const y = yarnInvFreq(c);
    this.invFreq = y.invFreq;
    this.concentration = y.concentration;
    this.cos = new Float64Array(c.head_dim / 2);
    this.sin = new Float64Array(c.head_dim / 2);
    this.reset();
  }

  /** Forget the sequence: the next step is position 0. */
  reset(): void {
    this.pos = 0;
    this.k = Array.from({ length: this.config.n_layers }, () => []);
    this.v = Array.from({ length: this.config.n_layers }, () => []);
  }

  /** The position the next `step` will take. */
  get position(): number {
    return this.pos;
  }

  private get(name: string): Float64Array {
    return this.w.get(name)!;
  }

  private rmsnorm(x: Float64Array, name: string): Float64Array {
    const w = this.get(name);
    let ss = 0;
    for (const v of x) ss += v * v;
    const inv = 1 / Math.sqrt(ss / x.length + this.config.norm_eps);
    return x.map((v, i) => w[i] * v * inv);
  }

  /** Rotate-half RoPE in place: pairs (i, i + hd/2) of every head, with the YaRN tables of this position. */
  private rope(x: Float64Array, heads: number): void {
    const hd = this.config.head_dim;
    const half = hd / 2;
    for (let h = 0; h < heads; h++)
      for (let i = 0; i < half; i++) {
        const a = h * hd + i;
        const b = a + half;
        const x0 = x[a];
        const x1 = x[b];
        x[a] = x0 * this.cos[i] - x1 * this.sin[i];
        x[b] = x1 * this.cos[i] + x0 * this.sin[i];
      }
  }

  private attention(l: number, x: Float64Array): Float64Array {
    const c = this.config;
    const hd = c.head_dim;
    const p = `blk.${l}.`;
    const pos = this.pos;
    const h = this.rmsnorm(x, `${p}attn_norm.weight`);
    const q = matvec(this.get(`${p}attn_q.weight`), h, c.n_heads * hd, this.get(`${p}attn_q.bias`));
    const k = matvec(this.get(`${p}attn_k.weight`), h, c.n_kv_heads * hd, this.get(`${p}attn_k.bias`));
    const v = matvec(this.get(`${p}attn_v.weight`), h, c.n_kv_heads * hd, this.get(`${p}attn_v.bias`));
    this.rope(q, c.n_heads);
    this.rope(k, c.n_kv_heads);
    this.k[l][pos] = k;
    this.v[l][pos] = v;
    const sinks = this.get(`${p}attn_sinks.weight`);
    const t0 = c.sliding_layers[l] ? Math.max(0, pos - c.sliding_window + 1) : 0;
    const group = c.n_heads / c.n_kv_heads;
    const scale = 1 / Math.sqrt(hd);
    const att = new Float64Array(c.n_heads * hd);
    const s = new Float64Array(pos - t0 + 1);
    for (let head = 0; head < c.n_heads; head++) {
      const kvo = Math.floor(head / group) * hd;
      const qo = head * hd;
      let m = sinks[head];
      for (let t = t0; t <= pos; t++) {
        const kt = this.k[l][t];
        let d = 0;
        for (let i = 0; i < hd; i++) d += q[qo + i] * kt[kvo + i];
        s[t - t0] = d * scale;
        if (s[t - t0] > m) m = s[t - t0];
      }
      // The sink is one more logit in the softmax's denominator; it carries no value.
      let sum = Math.exp(sinks[head] - m);
      for (let j = 0; j < s.length; j++) sum += s[j] = Math.exp(s[j] - m);
      for (let t = t0; t <= pos; t++) {
        const pj = s[t - t0] / sum;
        const vt = this.v[l][t];
        for (let i = 0; i < hd; i++) att[qo + i] += pj * vt[kvo + i];
      }
    }
    return matvec(this.get(`${p}attn_output.weight`), att, c.dim, this.get(`${p}attn_output.bias`));
  }

  /** The router's choice for a normed hidden state: the top-k experts (lowest index on ties) and their softmax weights. */
  route(l: number, h: Float64Array): { experts: number[]; weights: number[]; logits: Float64Array } {
    const c = this.config;
    const p = `blk.${l}.`;
    const logits = matvec(this.get(`${p}ffn_gate_inp.weight`), h, c.n_experts, this.get(`${p}ffn_gate_inp.bias`));
    const order = Array.from({ length: c.n_experts }, (_, e) => e).sort((a, b) => logits[b] - logits[a] || a - b);
    const experts = order.slice(0, c.experts_per_token);
    const m = logits[experts[0]];
    const e = experts.map((i) => Math.exp(logits[i] - m));
    const z = e.reduce((a, b) => a + b, 0);
    return { experts, weights: e.map((v) => v / z), logits };
  }

  private moe(l: number, x: Float64Array): Float64Array {
    const c = this.config;
    const { dim: D, ffn_dim: F, swiglu_limit: limit } = c;
    const p = `blk.${l}.`;
    const h = this.rmsnorm(x, `${p}ffn_norm.weight`);
    const { experts, weights } = this.route(l, h);
    const [wg, bg, wu, bu, wd, bd] = [
      'gate_exps.weight',
      'gate_exps.bias',
      'up_exps.weight',
      'up_exps.bias',
      'down_exps.weight',
      'down_exps.bias',
    ].map((n) => this.get(`${p}ffn_${n}`));
    const out = new Float64Array(D);
    experts.forEach((e, j) => {
      const g = matvec(wg, h, F, bg, e * F * D, e * F);
      const u = matvec(wu, h, F, bu, e * F * D, e * F);
      const a = new Float64Array(F);
      for (let i = 0; i < F; i++) {
        const gi = Math.min(g[i], limit);
        const ui = Math.min(Math.max(u[i], -limit), limit);
        a[i] = (gi / (1 + Math.exp(-1.702 * gi))) * (ui + 1);
      }
      const y = matvec(wd, a, D, bd, e * D * F, e * D);
      for (let i = 0; i < D; i++) out[i] += weights[j] * y[i];
    });
    return out;
  }

  /** Feeds `token` at the next position; returns that position's logits (vocab_size of them). */
  step(token: number): Float64Array {
    const c = this.config;
    if (!Number.isInteger(token) || token < 0 || token >= c.vocab_size) throw new Error(`token ${token} out of range [0, ${c.vocab_size})`);
    for (let i = 0; i < this.invFreq.length; i++) {
      this.cos[i] = Math.cos(this.pos * this.invFreq[i]) * this.concentration;
      this.sin[i] = Math.sin(this.pos * this.invFreq[i]) * this.concentration;
    }
    let x = this.get('token_embd.weight').slice(token * c.dim, (token + 1) * c.dim);
    for (let l = 0; l < c.n_layers; l++) {
      const o = this.attention(l, x);
      x = x.map((v, i) => v + o[i]);
      const y = this.moe(l, x);
      x = x.map((v, i) => v + y[i]);
    }
    this.pos++;
    return matvec(this.get('output.weight'), this.rmsnorm(x, 'output_norm.weight'), c.vocab_size);
  }
}

// ---------------------------------------------------------------------------------------------
// The Hugging Face checkpoint form (openai/gpt-oss-* layout), read directly for tests.

const FP4 = [0, 0.5, 1, 1.5, 2, 3, 4, 6, -0, -0.5, -1, -1.5, -2, -3, -4, -6];

interface StEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

/** A parsed safetensors file: its header entries and the data section. */
export function readSafetensors(path: string): { header: Record<string, StEntry>; data: Uint8Array } {
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, StEntry>;
  delete header.__metadata__;
  return { header, data: new Uint8Array(buf.buffer, buf.byteOffset + 8 + n, buf.length - 8 - n) };
}

function bytesOf(st: ReturnType<typeof readSafetensors>, name: string, dtype: string): { shape: number[]; bytes: Uint8Array } {
  const e = st.header[name];
  if (!e) throw new Error(`safetensors: no tensor ${name}`);
  if (e.dtype !== dtype) throw new Error(`safetensors: ${name} is ${e.dtype}, want ${dtype}`);
  return { shape: e.shape, bytes: st.data.subarray(e.data_offsets[0], e.data_offsets[1]) };
}

/** A BF16 (or F32) tensor as float64. */
function floatTensor(st: ReturnType<typeof readSafetensors>, name: string): { shape: number[]; data: Float64Array } {
  const e = st.header[name];
  if (!e) throw new Error(`safetensors: no tensor ${name}`);
  const { shape, bytes } = bytesOf(st, name, e.dtype);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const f = new Float32Array(1);
  const u = new Uint32Array(f.buffer);
  if (e.dtype === 'BF16') {
    const out = new Float64Array(bytes.length / 2);
    for (let i = 0; i < out.length; i++) {
      u[0] = dv.getUint16(2 * i, true) << 16;
      out[i] = f[0];
    }
    return { shape, data: out };
  }
  if (e.dtype === 'F32') return { shape, data: Float64Array.from({ length: bytes.length / 4 }, (_, i) => dv.getFloat32(4 * i, true)) };
  throw new Error(`safetensors: ${name} has unsupported dtype ${e.dtype}`);
}

/** MXFP4 `X_blocks` U8 [E, N, K/32, 16] + `X_scales` U8 [E, N, K/32] → float64 [E, N, K] (OpenAI's decoding). */
export function decodeMxfp4Hf(blocks: Uint8Array, scales: Uint8Array): Float64Array {
  if (blocks.length !== scales.length * 16) throw new Error(`mxfp4: ${blocks.length} block bytes for ${scales.length} scales`);
  const out = new Float64Array(scales.length * 32);
  for (let b = 0; b < scales.length; b++) {
    if (scales[b] === 255) throw new Error(`mxfp4: scale 255 (NaN) at block ${b}`);
    const s = 2 ** (scales[b] - 127);
    for (let i = 0; i < 16; i++) {
      const byte = blocks[b * 16 + i];
      out[b * 32 + 2 * i] = FP4[byte & 15] * s;
      out[b * 32 + 2 * i + 1] = FP4[byte >> 4] * s;
    }
  }
  return out;
}

/** Rows of a stacked [E, 2F, K] (interleaved gate/up) as [E, F, K]: `parity` 0 = gate (even rows), 1 = up (odd rows). */
function deinterleave(x: Float64Array, E: number, F: number, K: number, parity: 0 | 1): Float64Array {
  const out = new Float64Array(E * F * K);
  for (let e = 0; e < E; e++)
    for (let r = 0; r < F; r++)
      out.set(x.subarray((e * 2 * F + 2 * r + parity) * K, (e * 2 * F + 2 * r + parity + 1) * K), (e * F + r) * K);
  return out;
}

/** The reference config from a gpt-oss Hugging Face config.json. */
export function gptOssConfigFromHf(j: any): GptOssRefConfig {
  const rs = j.rope_scaling ?? {};
  const n_layers = j.num_hidden_layers;
  const types: string[] =
    j.layer_types ?? Array.from({ length: n_layers }, (_, i) => (i % 2 === 0 ? 'sliding_attention' : 'full_attention'));
  const sliding_layers = types.map((t) => {
    if (t === 'sliding_attention') return true;
    if (t === 'full_attention') return false;
    throw new Error(`config.json: unknown layer_types entry ${JSON.stringify(t)}`);
  });
  return {
    dim: j.hidden_size,
    n_layers,
    n_heads: j.num_attention_heads,
    n_kv_heads: j.num_key_value_heads,
    head_dim: j.head_dim ?? j.hidden_size / j.num_attention_heads,
    ffn_dim: j.intermediate_size,
    vocab_size: j.vocab_size,
    rope_theta: j.rope_theta,
    norm_eps: j.rms_norm_eps,
    sliding_window: j.sliding_window,
    sliding_layers,
    yarn: {
      factor: rs.factor ?? 1,
      original_context_length: rs.original_max_position_embeddings ?? j.initial_context_length,
      beta_fast: rs.beta_fast ?? 32,
      beta_slow: rs.beta_slow ?? 1,
      truncate: rs.truncate ?? true,
    },
    n_experts: j.num_local_experts,
    experts_per_token: j.num_experts_per_tok ?? j.experts_per_token,
    swiglu_limit: j.swiglu_limit,
  };
}

/** Loads a gpt-oss HF checkpoint folder (config.json + model.safetensors) as a config and canonical float64 tensors. */
export function loadGptOssHf(dir: string): { config: GptOssRefConfig; weights: Map<string, Float64Array> } {
  const config = gptOssConfigFromHf(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')));
  const st = readSafetensors(join(dir, 'model.safetensors'));
  const { n_experts: E, ffn_dim: F, dim: D } = config;
  const w = new Map<string, Float64Array>();
  const f = (name: string) => floatTensor(st, name).data;
  w.set('token_embd.weight', f('model.embed_tokens.weight'));
  w.set('output.weight', f('lm_head.weight'));
  w.set('output_norm.weight', f('model.norm.weight'));
  for (let l = 0; l < config.n_layers; l++) {
    const hf = `model.layers.${l}.`;
    const p = `blk.${l}.`;
    const simple: [string, string][] = [
      ['attn_norm.weight', 'input_layernorm.weight'],
      ['attn_q.weight', 'self_attn.q_proj.weight'],
      ['attn_q.bias', 'self_attn.q_proj.bias'],
      ['attn_k.weight', 'self_attn.k_proj.weight'],
      ['attn_k.bias', 'self_attn.k_proj.bias'],
      ['attn_v.weight', 'self_attn.v_proj.weight'],
      ['attn_v.bias', 'self_attn.v_proj.bias'],
      ['attn_output.weight', 'self_attn.o_proj.weight'],
      ['attn_output.bias', 'self_attn.o_proj.bias'],
      ['attn_sinks.weight', 'self_attn.sinks'],
      ['ffn_norm.weight', 'post_attention_layernorm.weight'],
      ['ffn_gate_inp.weight', 'mlp.router.weight'],
      ['ffn_gate_inp.bias', 'mlp.router.bias'],
      ['ffn_down_exps.bias', 'mlp.experts.down_proj_bias'],
    ];
    for (const [canon, name] of simple) w.set(p + canon, f(hf + name));
    const mx = (base: string, N: number, K: number) => {
      const blocks = bytesOf(st, `${hf}mlp.experts.${base}_blocks`, 'U8');
      const scales = bytesOf(st, `${hf}mlp.experts.${base}_scales`, 'U8');
      const want = [E, N, K / 32, 16].join();
      if (blocks.shape.join() !== want) throw new Error(`${base}_blocks shape [${blocks.shape}], want [${want}]`);
      return decodeMxfp4Hf(blocks.bytes, scales.bytes);
    };
    const gu = mx('gate_up_proj', 2 * F, D);
    w.set(`${p}ffn_gate_exps.weight`, deinterleave(gu, E, F, D, 0));
    w.set(`${p}ffn_up_exps.weight`, deinterleave(gu, E, F, D, 1));
    const gub = f(`${hf}mlp.experts.gate_up_proj_bias`);
    w.set(`${p}ffn_gate_exps.bias`, deinterleave(gub, E, F, 1, 0));
    w.set(`${p}ffn_up_exps.bias`, deinterleave(gub, E, F, 1, 1));
    w.set(`${p}ffn_down_exps.weight`, mx('down_proj', D, F));
  }
  return { config, weights: w };
}
