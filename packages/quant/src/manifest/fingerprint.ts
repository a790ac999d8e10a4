/**
 * Identity of a model's weights, so that an expanded manifest is only applied to the model it
 * was measured on. A tensor's digest is the sha256 of its values as little-endian f32 (so the
 * same weights stored f32 or converted losslessly from bf16 agree), or of its raw bytes when
 * the source is already quantized.
 */
import { createHash } from 'node:crypto';
import { floatValues, isFloatDtype, type Dtype, type ModelConfig, type QuantParams } from '@ie/format';

export function tensorSha256(dtype: Dtype, quant: QuantParams | null, rowMajor: Uint8Array): string {
  const h = createHash('sha256');
  if (isFloatDtype(dtype)) {
    const v = floatValues({ dtype }, rowMajor);
    h.update(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));
  } else {
    // Only what defines the encoding (not where the planes sit in a file), in a fixed order.
    h.update(JSON.stringify([dtype, quant?.scheme, quant?.granularity, quant?.group_size, quant?.scale_dtype]));
    h.update(rowMajor);
  }
  return h.digest('hex');
}

/**
 * Config fields that do not change what the weights compute, so they do not make another
 * model: the context length (a GGUF and a llama2.c file of the same model may disagree on it).
 */
export const IDENTITY_IGNORES: readonly string[] = ['context_length'];

/** The config fields that identify a model. */
export function identityConfig(config: ModelConfig | Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(config).filter(([k]) => !IDENTITY_IGNORES.includes(k)));
}

/** sha256 over the identifying config and each tensor's name, shape and digest, in order. */
export function modelFingerprint(
  config: ModelConfig,
  tensors: ReadonlyArray<{ name: string; shape: readonly number[]; sha256: string }>,
): string {
  const h = createHash('sha256');
  h.update(canonicalJson(identityConfig(config)));
  for (const t of tensors) h.update(`\n${t.name}:${t.shape.join('x')}:${t.sha256}`);
  return h.digest('hex');
}

/** JSON with object keys sorted at every level, so equal values hash equally. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .sort()
      .filter((k) => o[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v);
}
