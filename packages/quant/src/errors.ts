/** Errors from @ie/quant carry a stable `code`; the message says what to change. */
export const QUANT_ERROR_CODES = {
  QUANT_BAD_SHAPE: 'the values do not match rows x cols',
  QUANT_BAD_PARAMS: 'the quantization parameters are not allowed by the IEBIN spec',
  QUANT_NON_FINITE: 'a weight is NaN or infinite and cannot be quantized',
  QUANT_BAD_PACKED: 'packed bytes do not match the geometry',
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
