/** @ie/quant — weight quantization for ie: the RTN packers for IEBIN's i8 and q4 layouts. */
export { QuantError, QUANT_ERROR_CODES, type QuantErrorCode } from './errors.js';
export { packInt8, packInt4Groupwise, unpackInt8, unpackInt4Groupwise, type PackedTensor, type Int8PackOptions, type Int4PackOptions, type UnpackedInt8, type UnpackedInt4 } from './pack.js';
