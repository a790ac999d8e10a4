/** Errors from @ie/quant carry a stable `code`; the message says what to change. */
export const QUANT_ERROR_CODES = {
  QUANT_BAD_SHAPE: 'the values do not match rows x cols',
  QUANT_BAD_PARAMS: 'the quantization parameters are not allowed by the IEBIN spec',
  QUANT_NON_FINITE: 'a weight is NaN or infinite and cannot be quantized',
  QUANT_BAD_PACKED: 'packed bytes do not match the geometry',
  QUANT_MANIFEST_INVALID: 'the manifest does not follow the schema, or asks for something the model cannot have (every problem is listed)',
  QUANT_MANIFEST_MISMATCH: 'the manifest was made for another model (different config, tensors or weights)',
  QUANT_MANIFEST_REJECTED: 'the manifest failed its calibration gate; it is exported only when forced',
  QUANT_NEEDS_CALIBRATION:
    'the policy uses a method that needs calibration activations; export the manifest a calibration run expands it to',
  QUANT_CALIBRATION: 'the calibration data cannot be used (missing, empty, or too short)',
} as const;
export type QuantErrorCode = keyof typeof QUANT_ERROR_CODES;

export class QuantError extends Error {
  override readonly name = 'QuantError';
  constructor(
    readonly code: QuantErrorCode,
    message: string,
    readonly field?: string,
  ) {
    super(field ? `${field}: ${message}` : message);
  }
}

/** One thing wrong with a manifest: where (a JSON path such as `rules[2].group_size`) and what. */
export interface ManifestProblem {
  field: string;
  message: string;
}

/** A manifest problem list. `problems` holds every one found, not only the first. */
export class ManifestError extends QuantError {
  /** The first line of the message (without the problem list). */
  readonly summary: string;
  constructor(
    code: Extract<
      QuantErrorCode,
      'QUANT_MANIFEST_INVALID' | 'QUANT_MANIFEST_MISMATCH' | 'QUANT_MANIFEST_REJECTED' | 'QUANT_NEEDS_CALIBRATION'
    >,
    readonly file: string,
    readonly problems: ManifestProblem[],
    summary?: string,
  ) {
    const head = summary ?? `${file}: ${problems.length} problem${problems.length === 1 ? '' : 's'}`;
    super(code, `${head}${problems.length ? `\n${problems.map((p) => `  ${p.field}: ${p.message}`).join('\n')}` : ''}`);
    this.summary = head;
  }
}
