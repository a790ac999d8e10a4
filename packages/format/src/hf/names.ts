/** Hugging Face tensor names ↔ canonical (GGUF-style) tensor names. */

/** HF per-layer tensors of gpt-oss experts that make up, or are split into, canonical tensors. */
export const EXPERT_PARTS = [
  'gate_up_proj_blocks',
  'gate_up_proj_scales',
  'gate_up_proj_bias',
  'gate_up_proj',
  'down_proj_blocks',
  'down_proj_scales',
  'down_proj',
].map((p) => `mlp.experts.${p}`);

/**
 * HF tensor name → canonical name (null: a known tensor ie does not need; undefined: not a tensor
 * of a supported model, or one of gpt-oss's expert tensors that map onto canonical tensors
 * other than one to one: `gate_up_proj*`, `down_proj_blocks` / `_scales`, `down_proj`).
 */
export function canonicalHfName(name: string): string | null | undefined {
  const fixed: Record<string, string> = {
    'model.embed_tokens.weight': 'token_embd.weight',
    'model.norm.weight': 'output_norm.weight',
    'lm_head.weight': 'output.weight',
  };
  if (Object.hasOwn(fixed, name)) return fixed[name];
  const m = /^model\.layers\.(\d+)\.(.+)$/.exec(name);
  if (!m) return undefined;
  const per: Record<string, string> = {
    'input_layernorm.weight': 'attn_norm.weight',
    'self_attn.q_proj.weight': 'attn_q.weight',
    'self_attn.k_proj.weight': 'attn_k.weight',
    'self_attn.v_proj.weight': 'attn_v.weight',
    'self_attn.q_proj.bias': 'attn_q.bias',
    'self_attn.k_proj.bias': 'attn_k.bias',
    'self_attn.v_proj.bias': 'attn_v.bias',
    'self_attn.o_proj.weight': 'attn_output.weight',
    'self_attn.o_proj.bias': 'attn_output.bias',
    'self_attn.sinks': 'attn_sinks.weight',
    'post_attention_layernorm.weight': 'ffn_norm.weight',
    'mlp.gate_proj.weight': 'ffn_gate.weight',
    'mlp.up_proj.weight': 'ffn_up.weight',
    'mlp.down_proj.weight': 'ffn_down.weight',
    'mlp.router.weight': 'ffn_gate_inp.weight',
    'mlp.router.bias': 'ffn_gate_inp.bias',
    'mlp.experts.down_proj_bias': 'ffn_down_exps.bias',
  };
  if (m[2] === 'self_attn.rotary_emb.inv_freq') return null;
  // Own keys only: a checkpoint's tensor named e.g. `model.layers.0.constructor` is not a known tensor.
  return Object.hasOwn(per, m[2]) ? `blk.${m[1]}.${per[m[2]]}` : undefined;
}

/** The inverse of {@link canonicalHfName} for writing HF directories (one-to-one names only). */
export function hfName(canonical: string): string {
  const fixed: Record<string, string> = {
    'token_embd.weight': 'model.embed_tokens.weight',
    'output_norm.weight': 'model.norm.weight',
    'output.weight': 'lm_head.weight',
  };
  if (Object.hasOwn(fixed, canonical)) return fixed[canonical];
  const m = /^blk\.(\d+)\.(.+)$/.exec(canonical);
  if (!m) throw new RangeError(`not a canonical tensor name: ${canonical}`);
  const per: Record<string, string> = {
    'attn_norm.weight': 'input_layernorm.weight',
    'attn_q.weight': 'self_attn.q_proj.weight',
    'attn_k.weight': 'self_attn.k_proj.weight',
    'attn_v.weight': 'self_attn.v_proj.weight',
    'attn_q.bias': 'self_attn.q_proj.bias',
    'attn_k.bias': 'self_attn.k_proj.bias',
    'attn_v.bias': 'self_attn.v_proj.bias',
    'attn_output.weight': 'self_attn.o_proj.weight',
    'attn_output.bias': 'self_attn.o_proj.bias',
    'attn_sinks.weight': 'self_attn.sinks',
    'ffn_norm.weight': 'post_attention_layernorm.weight',
    'ffn_gate.weight': 'mlp.gate_proj.weight',
    'ffn_up.weight': 'mlp.up_proj.weight',
    'ffn_down.weight': 'mlp.down_proj.weight',
    'ffn_gate_inp.weight': 'mlp.router.weight',
    'ffn_gate_inp.bias': 'mlp.router.bias',
    'ffn_down_exps.bias': 'mlp.experts.down_proj_bias',
  };
  if (!Object.hasOwn(per, m[2])) throw new RangeError(`${canonical} has no one-to-one Hugging Face tensor`);
  return `model.layers.${m[1]}.${per[m[2]]}`;
}
