/**
 * A float64 llama forward pass in plain TypeScript, written from the model definition and
 * independent of the kernels: the yardstick for the engine's FP32 logits.
 */
import { IebinReader, decodeTensor, type ModelConfig } from '@ie/format';

export class ReferenceModel {
  private readonly w = new Map<string, Float64Array>();
  private readonly k: Float64Array[][] = [];
  private readonly v: Float64Array[][] = [];

  private constructor(readonly c: ModelConfig) {}

  static async load(dir: string): Promise<ReferenceModel> {
    const r = await IebinReader.open(dir);
    const m = new ReferenceModel(r.config);
    for (const t of r.tensors) m.w.set(t.name, Float64Array.from(decodeTensor(t, (await r.read(t.name)).bytes)));
    await r.close();
    for (let l = 0; l < r.config.n_layers; l++) {
      m.k.push([]);
      m.v.push([]);
    }
    return m;
  }

  private get(name: string): Float64Array {
    const t = this.w.get(name);
    if (!t) throw new Error(`missing ${name}`);
    return t;
  }

  private matvec(name: string, x: Float64Array, rows: number): Float64Array {
    const w = this.get(name);
    const cols = x.length;
    const y = new Float64Array(rows);
    for (let r = 0; r < rows; r++) {
      let s = 0;
      for (let k = 0; k < cols; k++) s += w[r * cols + k] * x[k];
      y[r] = s;
    }
    return y;
  }

  private rmsnorm(x: Float64Array, name: string): Float64Array {
    const w = this.get(name);
    let ss = 0;
    for (const v of x) ss += v * v;
    const inv = 1 / Math.sqrt(ss / x.length + this.c.norm_eps);
    return x.map((v, i) => w[i] * v * inv);
  }

  private rope(x: Float64Array, heads: number, pos: number): void {
    const { head_dim: hd, rope_theta: theta, rope_style: style, rope_scaling: rs } = this.c;
    for (let h = 0; h < heads; h++)
      for (let i = 0; i < hd / 2; i++) {
        let f = theta ** (-(2 * i) / hd) / (this.c.rope_freq_factors?.[i] ?? 1);
        if (rs?.type === 'llama3') {
          const wl = (2 * Math.PI) / f;
          const lowWl = rs.original_context_length / rs.low_freq_factor;
          const highWl = rs.original_context_length / rs.high_freq_factor;
          if (wl > lowWl) f /= rs.factor;
          else if (wl >= highWl) {
            const s = (rs.original_context_length / wl - rs.low_freq_factor) / (rs.high_freq_factor - rs.low_freq_factor);
            f = (1 - s) * (f / rs.factor) + s * f;
          }
        }
        const [a, b] = style === 'adjacent' ? [h * hd + 2 * i, h * hd + 2 * i + 1] : [h * hd + i, h * hd + i + hd / 2];
        const c = Math.cos(pos * f);
        const s = Math.sin(pos * f);
        const x0 = x[a];
        const x1 = x[b];
        x[a] = x0 * c - x1 * s;
        x[b] = x0 * s + x1 * c;
      }
  }

  /** Logits for `token` at position `pos` (positions must come in order from 0). */
  forward(token: number, pos: number): Float64Array {
    const c = this.c;
    const hd = c.head_dim;
    const emb = this.get('token_embd.weight');
    let x = emb.slice(token * c.dim, (token + 1) * c.dim);
    for (let l = 0; l < c.n_layers; l++) {
      const p = `blk.${l}.`;
      const h = this.rmsnorm(x, `${p}attn_norm.weight`);
      const q = this.matvec(`${p}attn_q.weight`, h, c.n_heads * hd);
      const k = this.matvec(`${p}attn_k.weight`, h, c.n_kv_heads * hd);
      const v = this.matvec(`${p}attn_v.weight`, h, c.n_kv_heads * hd);
      if (c.attn_qkv_bias) {
        const [bq, bk, bv] = ['q', 'k', 'v'].map((n) => this.get(`${p}attn_${n}.bias`));
        q.forEach((_, i) => (q[i] += bq[i]));
        k.forEach((_, i) => (k[i] += bk[i]));
        v.forEach((_, i) => (v[i] += bv[i]));
      }
      this.rope(q, c.n_heads, pos);
      this.rope(k, c.n_kv_heads, pos);
      this.k[l][pos] = k;
      this.v[l][pos] = v;
      const att = new Float64Array(c.n_heads * hd);
      const group = c.n_heads / c.n_kv_heads;
      const t0 = c.sliding_window ? Math.max(0, pos - c.sliding_window + 1) : 0;
      for (let head = 0; head < c.n_heads; head++) {
        const kvh = Math.floor(head / group);
        const scores: number[] = [];
        for (let t = t0; t <= pos; t++) {
          let s = 0;
          for (let d = 0; d < hd; d++) s += q[head * hd + d] * this.k[l][t][kvh * hd + d];
          scores.push(s / Math.sqrt(hd));
        }
        const mx = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - mx));
        const sum = e.reduce((a, b) => a + b, 0);
        for (let t = t0; t <= pos; t++) for (let d = 0; d < hd; d++) att[head * hd + d] += (e[t - t0] / sum) * this.v[l][t][kvh * hd + d];
      }
      const o = this.matvec(`${p}attn_output.weight`, att, c.dim);
      x = x.map((v2, i) => v2 + o[i]);
      const h2 = this.rmsnorm(x, `${p}ffn_norm.weight`);
      const g = this.matvec(`${p}ffn_gate.weight`, h2, c.ffn_dim);
      const u = this.matvec(`${p}ffn_up.weight`, h2, c.ffn_dim);
      const a = g.map((gv, i) => (gv / (1 + Math.exp(-gv))) * u[i]);
      const d = this.matvec(`${p}ffn_down.weight`, a, c.dim);
      x = x.map((v2, i) => v2 + d[i]);
    }
    const hf = this.rmsnorm(x, 'output_norm.weight');
    return this.matvec(c.tied_classifier ? 'token_embd.weight' : 'output.weight', hf, c.vocab_size);
  }
}

/** log-softmax in float64. */
export function logSoftmax(z: ArrayLike<number>): Float64Array {
  let m = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < z.length; i++) m = Math.max(m, z[i]);
  let s = 0;
  for (let i = 0; i < z.length; i++) s += Math.exp(z[i] - m);
  const lse = m + Math.log(s);
  return Float64Array.from(z, (v) => v - lse);
}
