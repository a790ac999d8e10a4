/**
 * Every error @ie/format throws is a {@link FormatError} with a stable `code`
 * from {@link FORMAT_ERROR_CODES}, the file it concerns and, where one is known,
 * the field (a JSON path such as `tensors[3].offset` or a header field name).
 * Callers switch on `code`; the message says what is wrong and what to do.
 */
export const FORMAT_ERROR_CODES = {
  // IEBIN header (model.ie.json)
  IEBIN_NOT_FOUND: 'the model directory or file does not exist',
  IEBIN_HEADER_TOO_LARGE: 'model.ie.json is larger than the header cap',
  IEBIN_HEADER_NOT_JSON: 'model.ie.json is not valid JSON',
  IEBIN_HEADER_CHECKSUM: 'model.ie.json does not match its own checksum',
  IEBIN_UNKNOWN_FIELD: 'model.ie.json has a top-level field this reader does not know',
  IEBIN_BAD_FORMAT_NAME: 'model.ie.json is not an IEBIN header',
  IEBIN_UNSUPPORTED_VERSION: 'the IEBIN version is not one this reader knows',
  IEBIN_BAD_FIELD: 'a header field is missing or has the wrong type or value',
  IEBIN_BAD_CONFIG: 'the model config is inconsistent',
  IEBIN_BAD_TOKENIZER: 'the tokenizer section is inconsistent',
  IEBIN_BAD_CHAT_TEMPLATE: 'the chat section (chat template, special-token strings) is malformed or too large',
  IEBIN_TOO_MANY_TENSORS: 'the tensor table exceeds the cap',
  IEBIN_BAD_DTYPE: 'a tensor has an unknown dtype',
  IEBIN_BAD_SHAPE: 'a tensor shape is invalid (rank, zero or non-integer dims, overflow)',
  IEBIN_BAD_LAYOUT: 'a tensor layout is invalid or not allowed for its dtype',
  IEBIN_BAD_QUANT: 'a tensor quantization block is invalid',
  IEBIN_SIZE_MISMATCH: 'a tensor byte size does not match dtype x shape',
  IEBIN_MISALIGNED: 'a tensor offset is not 64-byte aligned',
  IEBIN_RANGE_OUT_OF_FILE: 'a tensor range lies outside model.ie.bin',
  IEBIN_OVERLAP: 'two tensors overlap',
  IEBIN_HOLE: 'tensors are not contiguous (a gap larger than alignment padding)',
  IEBIN_DUPLICATE_TENSOR: 'two tensors have the same name',
  IEBIN_BIN_SIZE_MISMATCH: 'model.ie.bin has a different size than the header says',
  IEBIN_TENSOR_NOT_FOUND: 'no tensor has that name',
  IEBIN_MISSING_TENSOR: 'a tensor the model config requires is absent',
  IEBIN_UNEXPECTED_TENSOR: 'a tensor is not part of the model the config describes',
  IEBIN_CHECKSUM_MISMATCH: 'tensor bytes do not match their checksum',
  IEBIN_PADDING_NOT_ZERO: 'alignment padding holds non-zero bytes',
  IEBIN_BUFFER_TOO_SMALL: 'the buffer given for zero-copy views is smaller than model.ie.bin',
  IEBIN_WRITE_FAILED: 'writing the model failed; the previous output is untouched',
  IEBIN_WRITER_STATE: 'the writer was used out of order',
  // safetensors
  SAFETENSORS_TRUNCATED: 'the safetensors file is shorter than its header says',
  SAFETENSORS_HEADER_TOO_LARGE: 'the safetensors header length exceeds the cap or the file',
  SAFETENSORS_HEADER_NOT_JSON: 'the safetensors header is not valid JSON',
  SAFETENSORS_BAD_ENTRY: 'a safetensors tensor entry is malformed',
  SAFETENSORS_BAD_DTYPE: 'a safetensors tensor has an unsupported dtype',
  SAFETENSORS_SIZE_MISMATCH: 'a safetensors tensor byte range does not match dtype x shape',
  SAFETENSORS_RANGE_OUT_OF_FILE: 'a safetensors tensor range lies outside the file',
  SAFETENSORS_OVERLAP: 'two safetensors tensors overlap',
  SAFETENSORS_NOT_CONTIGUOUS: 'the safetensors tensors leave a gap, do not start at data offset 0, or do not end at the end of the file',
  SAFETENSORS_TOO_MANY_TENSORS: 'the safetensors header lists more tensors than the cap',
  // Hugging Face directory
  HF_NOT_A_MODEL_DIR: 'the directory has no config.json or no safetensors weights',
  HF_BAD_CONFIG: 'config.json is missing a field or has an unsupported value',
  HF_UNSUPPORTED_ARCHITECTURE: 'the architecture is not a supported llama-family or gpt-oss model',
  HF_BAD_INDEX: 'model.safetensors.index.json is malformed',
  HF_MISSING_TENSOR: 'a tensor the architecture needs is missing',
  HF_UNEXPECTED_TENSOR: 'a tensor is not part of the architecture',
  HF_BAD_TENSOR: 'a tensor has the wrong shape or dtype for the config',
  HF_BAD_TOKENIZER: 'tokenizer.json is missing or malformed',
  HF_BAD_TOKENIZER_CONFIG: 'tokenizer_config.json or chat_template.jinja is malformed (chat_template, bos_token, eos_token) or too large',
  // llama2.c
  LLAMA2C_TRUNCATED: 'the llama2.c checkpoint is shorter than its header implies',
  LLAMA2C_BAD_HEADER: 'the llama2.c header has impossible values',
  LLAMA2C_BAD_TOKENIZER: 'the llama2.c tokenizer.bin is malformed',
  // GGUF
  GGUF_BAD_MAGIC: 'the file does not start with GGUF',
  GGUF_UNSUPPORTED_VERSION: 'the GGUF version is not supported',
  GGUF_TRUNCATED: 'the GGUF file ends inside its header or data',
  GGUF_BAD_VALUE_TYPE: 'a GGUF metadata value has an unknown type',
  GGUF_TOO_MANY_ENTRIES: 'a GGUF count exceeds what the file can hold or the cap',
  GGUF_BAD_STRING: 'a GGUF string is not valid UTF-8 or is too long',
  GGUF_DUPLICATE_KEY: 'a GGUF metadata key appears twice',
  GGUF_BAD_TENSOR_INFO: 'a GGUF tensor descriptor is malformed',
  GGUF_UNSUPPORTED_TENSOR_TYPE: 'a GGUF tensor has a ggml type ie does not import',
  GGUF_BAD_TENSOR_DATA: 'a GGUF tensor holds values ie refuses (an MXFP4 NaN scale)',
  GGUF_RANGE_OUT_OF_FILE: 'a GGUF tensor range lies outside the file',
  GGUF_OVERLAP: 'two GGUF tensors overlap',
  GGUF_MISALIGNED: 'a GGUF tensor offset is not aligned',
  GGUF_BAD_METADATA: 'GGUF metadata the architecture needs is missing or wrong',
  GGUF_UNSUPPORTED_ARCHITECTURE: 'the GGUF architecture is not llama, qwen2 or gpt-oss',
  // shared by importers
  SOURCE_INCONSISTENT: 'the source model is internally inconsistent',
  IO_ERROR: 'a file could not be read or written',
} as const;

export type FormatErrorCode = keyof typeof FORMAT_ERROR_CODES;

export interface FormatErrorDetails {
  /** The file the error concerns. */
  file?: string;
  /** The field, as a JSON path or header field name. */
  field?: string;
  cause?: unknown;
}

export class FormatError extends Error {
  override readonly name: string = 'FormatError';
  readonly code: FormatErrorCode;
  readonly file: string | undefined;
  readonly field: string | undefined;

  constructor(code: FormatErrorCode, message: string, details: FormatErrorDetails = {}) {
    const where = [details.file, details.field].filter(Boolean).join(': ');
    super(where ? `${where}: ${message}` : message, details.cause === undefined ? undefined : { cause: details.cause });
    this.code = code;
    this.file = details.file;
    this.field = details.field;
  }
}

/** Errors about IEBIN files (model.ie.json, model.ie.bin). */
export class IebinError extends FormatError {
  override readonly name = 'IebinError';
}
/** Errors about safetensors files and Hugging Face model directories. */
export class SafetensorsError extends FormatError {
  override readonly name = 'SafetensorsError';
}
/** Errors about Hugging Face model directories (config.json, index, tokenizer.json). */
export class HfModelError extends FormatError {
  override readonly name = 'HfModelError';
}
/** Errors about llama2.c checkpoints and tokenizers. */
export class Llama2cError extends FormatError {
  override readonly name = 'Llama2cError';
}
/** Errors about GGUF files. */
export class GgufError extends FormatError {
  override readonly name = 'GgufError';
}

export function isFormatError(e: unknown): e is FormatError {
  return e instanceof FormatError;
}
