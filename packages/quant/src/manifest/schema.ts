/**
 * The quantization manifest's JSON Schema, one document for both forms: a **policy** (rules a
 * person writes: tensor-name patterns → scheme, plus calibration settings and gate thresholds)
 * and an **expanded** manifest (what `ie quantize` writes: one entry per tensor with its final
 * scheme, layout, measured quality and verdict). The TypeScript types are inferred from it, and
 * `quant/q4_manifest.schema.json` is this object serialized (a test keeps the two equal).
 */
import type { FromSchema } from 'json-schema-to-ts';

export const MANIFEST_VERSION = 1;

const scaleDtype = { enum: ['f16', 'bf16', 'f32'], description: 'Storage dtype of the per-group (or per-row) scales.' } as const;
const groupSize = { enum: [32, 64, 128], description: 'Consecutive elements of a row that share a scale.' } as const;
const method = {
  enum: ['rtn', 'clip', 'awq'],
  description:
    "How scales are chosen. rtn: round to nearest from each group's extremes. clip: per group, the clip ratio (of a grid) that minimizes the reconstruction MSE. awq: activation-aware input-channel scaling from calibration activations (folded into the preceding norm or projection), then clip.",
} as const;
const layout = {
  type: 'object',
  additionalProperties: false,
  required: ['order', 'block_k'],
  properties: {
    order: { enum: ['row_major', 'pretransposed'] },
    block_k: { type: 'integer', minimum: 0, description: 'K-block size of the blocked layout, 0 for none.' },
  },
} as const;

const gate = {
  type: 'object',
  additionalProperties: false,
  description: 'Thresholds a quantized model must meet to be accepted. Omitted ones take the documented defaults.',
  properties: {
    min_cosine: {
      type: 'number',
      minimum: -1,
      maximum: 1,
      description: 'Per tensor: least cosine similarity of W·x (FP32 vs quantized) over the calibration activations.',
    },
    min_snr_db: { type: 'number', description: 'Per tensor: least signal-to-noise ratio of W·x in dB.' },
    max_kl: {
      type: 'number',
      minimum: 0,
      description: 'End to end: largest mean KL divergence (nats) of the next-token distributions, FP32 ‖ quantized.',
    },
    min_top1: {
      type: 'number',
      minimum: 0,
      maximum: 1,
      description: "End to end: least fraction of positions where the quantized model's top token is the FP32 model's.",
    },
  },
} as const;

const calibration = {
  type: 'object',
  additionalProperties: false,
  description: 'The text the FP32 model runs on to collect activations and to judge the quantized model.',
  properties: {
    text: { type: 'string', minLength: 1, description: 'A UTF-8 text file, relative to the manifest. `--calib FILE` overrides it.' },
    sequence_length: { type: 'integer', minimum: 2, maximum: 4096, description: 'Tokens per calibration sequence (BOS included).' },
    max_sequences: { type: 'integer', minimum: 1, maximum: 4096, description: 'At most this many sequences are taken from the text.' },
  },
} as const;

/** A rule: a name pattern and what the matched tensors become. Scheme-specific fields are checked per scheme. */
const rule = {
  type: 'object',
  additionalProperties: false,
  required: ['scheme'],
  properties: {
    match: {
      type: 'string',
      minLength: 1,
      description:
        'A glob over canonical tensor names: * matches within a dot-separated part, ** across parts, ? one character, {a,b} alternatives.',
    },
    regex: { type: 'string', minLength: 1, description: 'A regular expression that must match the whole name.' },
    scheme: {
      enum: ['int4w', 'int8w', 'f32', 'f16', 'bf16', 'keep'],
      description: 'int4w / int8w quantize; f32/f16/bf16 store floats; keep leaves the tensor as the source has it.',
    },
    group_size: groupSize,
    mode: { enum: ['symmetric', 'affine'], description: 'int4w: symmetric (code - 8) or affine with a per-group zero point.' },
    granularity: { enum: ['per_row', 'per_group'], description: 'int8w: one scale per row or per group.' },
    scale_dtype: scaleDtype,
    method,
    allow_padding: {
      type: 'boolean',
      description: 'Allow a group size that does not divide K (the last group of each row is zero-padded).',
    },
  },
} as const;

const policy = {
  type: 'object',
  additionalProperties: false,
  required: ['kind', 'version', 'rules'],
  properties: {
    $schema: { type: 'string' },
    kind: { const: 'policy' },
    version: { const: MANIFEST_VERSION },
    name: { type: 'string' },
    description: { type: 'string' },
    defaults: {
      type: 'object',
      additionalProperties: false,
      description: 'Values a rule gets when it does not set them.',
      properties: { method, scale_dtype: scaleDtype, allow_padding: { type: 'boolean' } },
    },
    rules: {
      type: 'array',
      minItems: 1,
      items: rule,
      description:
        'Checked in order; the first rule whose pattern matches a tensor decides it. Tensors no rule matches are kept as they are.',
    },
    layout: {
      type: 'object',
      additionalProperties: false,
      description: 'The layout matrices are packed in (export flags must agree).',
      properties: { pretranspose: { type: 'boolean' }, block_k: { type: 'integer', minimum: 0 } },
    },
    calibration,
    gate,
  },
} as const;

const measure = {
  type: 'object',
  additionalProperties: false,
  required: ['cosine', 'snr_db'],
  properties: { cosine: { type: 'number' }, snr_db: { type: 'number' } },
} as const;

const transform = {
  type: 'object',
  additionalProperties: false,
  required: ['op', 'by'],
  description: 'An exact float rewrite applied before packing (activation-aware scaling and its fold).',
  properties: {
    op: {
      enum: ['scale_columns', 'divide_rows', 'divide'],
      description: 'scale_columns: W[:, k] *= s[k]; divide_rows: W[n, :] /= s[n]; divide: v[i] /= s[i] (norms, biases).',
    },
    by: { type: 'string', description: 'A key of `scales`.' },
  },
} as const;

const entry = {
  type: 'object',
  additionalProperties: false,
  required: ['name', 'shape', 'source', 'scheme', 'layout', 'verdict'],
  properties: {
    name: { type: 'string' },
    shape: { type: 'array', items: { type: 'integer', minimum: 1 }, minItems: 1, maxItems: 2 },
    source: {
      type: 'object',
      additionalProperties: false,
      required: ['dtype', 'sha256'],
      properties: {
        dtype: { enum: ['f32', 'f16', 'bf16', 'i8', 'q4', 'q4_k', 'q5_k', 'q6_k', 'iq4_nl', 'mxfp4'] },
        sha256: {
          type: 'string',
          pattern: '^[0-9a-f]{64}$',
          description: "Of the tensor's values as little-endian f32 (raw bytes for quantized sources).",
        },
      },
    },
    scheme: { enum: ['int4w', 'int8w', 'f32', 'f16', 'bf16', 'q4_k', 'q5_k', 'q6_k', 'iq4_nl', 'mxfp4'] },
    group_size: groupSize,
    mode: { enum: ['symmetric', 'affine'] },
    granularity: { enum: ['per_row', 'per_group'] },
    scale_dtype: scaleDtype,
    method,
    alpha: {
      type: 'number',
      minimum: 0,
      maximum: 1,
      description: "awq: the exponent the search chose for this tensor's input site (0: scaling did not help, clip alone).",
    },
    rule: { type: 'integer', minimum: -1, description: 'Index of the policy rule that decided this tensor (-1: none matched, kept).' },
    transforms: { type: 'array', items: transform },
    layout,
    quality: { anyOf: [measure, { type: 'null' }] },
    verdict: { enum: ['pass', 'fail', 'not_measured'] },
  },
} as const;

const expanded = {
  type: 'object',
  additionalProperties: false,
  required: ['kind', 'version', 'status', 'policy', 'model', 'gate', 'tensors', 'scales'],
  properties: {
    $schema: { type: 'string' },
    kind: { const: 'expanded' },
    version: { const: MANIFEST_VERSION },
    status: { enum: ['accepted', 'rejected'], description: 'accepted when every tensor and the end-to-end figures meet the gate.' },
    policy: {
      type: 'object',
      additionalProperties: false,
      required: ['sha256'],
      properties: { name: { type: 'string' }, file: { type: 'string' }, sha256: { type: 'string', pattern: '^[0-9a-f]{64}$' } },
    },
    model: {
      type: 'object',
      additionalProperties: false,
      required: ['fingerprint', 'config'],
      properties: {
        fingerprint: {
          type: 'string',
          pattern: '^[0-9a-f]{64}$',
          description: "sha256 over the config and every tensor's name, shape and source sha256.",
        },
        config: {
          type: 'object',
          description: "The model config the manifest was measured with (IEBIN's config block); export compares it field by field.",
        },
      },
    },
    calibration: {
      anyOf: [
        {
          type: 'object',
          additionalProperties: false,
          required: ['text', 'sha256', 'sequences', 'tokens'],
          properties: { text: { type: 'string' }, sha256: { type: 'string' }, sequences: { type: 'integer' }, tokens: { type: 'integer' } },
        },
        { type: 'null' },
      ],
    },
    gate: {
      type: 'object',
      additionalProperties: false,
      required: ['thresholds', 'end_to_end'],
      properties: {
        thresholds: { ...gate, required: ['min_cosine', 'min_snr_db', 'max_kl', 'min_top1'] },
        end_to_end: {
          anyOf: [
            {
              type: 'object',
              additionalProperties: false,
              required: ['kl_mean', 'kl_max', 'top1', 'positions'],
              properties: {
                kl_mean: { type: 'number' },
                kl_max: { type: 'number' },
                top1: { type: 'number' },
                positions: { type: 'integer' },
              },
            },
            { type: 'null' },
          ],
        },
        failures: { type: 'array', items: { type: 'string' } },
      },
    },
    scales: {
      type: 'object',
      description: 'Activation-aware input-channel scales by key: little-endian f32, base64.',
      additionalProperties: { type: 'string', contentEncoding: 'base64' },
    },
    tensors: { type: 'array', items: entry },
  },
} as const;

export const MANIFEST_SCHEMA = {
  $schema: 'http://json-schema.org/draft-07/schema#',
  $id: 'https://ie.dev/schemas/q4_manifest.schema.json',
  title: 'ie quantization manifest',
  description: 'A quantization policy (kind "policy") or the per-tensor manifest `ie quantize` expands it to (kind "expanded").',
  type: 'object',
  required: ['kind'],
  properties: { kind: { enum: ['policy', 'expanded'] } },
  discriminator: { propertyName: 'kind' },
  oneOf: [policy, expanded],
} as const;

export type Policy = FromSchema<typeof policy>;
export type PolicyRule = FromSchema<typeof rule>;
export type ExpandedManifest = FromSchema<typeof expanded>;
export type ManifestEntry = FromSchema<typeof entry>;
export type GateThresholds = Required<FromSchema<typeof gate>>;
export type CalibrationSettings = FromSchema<typeof calibration>;
export type EntryTransform = FromSchema<typeof transform>;
export type Manifest = Policy | ExpandedManifest;
export type QuantMethod = FromSchema<typeof method>;
export type TensorLayoutSpec = FromSchema<typeof layout>;
