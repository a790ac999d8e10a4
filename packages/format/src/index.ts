/**
 * @ie/format — the IEBIN v1 model format (reader, writer, spec constants), importers for
 * Hugging Face directories, llama2.c checkpoints and GGUF, and the f16/bf16 codecs.
 * Pure TypeScript: no native code.
 */
export * from './errors.js';
export * from './dtype.js';
export * from './layout.js';
export {
  BLOCK_DTYPES,
  BLOCK_FORMATS,
  IQ4_NL_LEVELS,
  MXFP4_VALUES,
  isBlockDtype,
  decodeBlocks,
  kScaleMin,
  e8m0ToF32,
  mxfp4FromHf,
  mxfp4ToHf,
  mxfp4NanBlock,
  quantizeMxfp4,
  type BlockDtype,
} from './blocks.js';
export * from './llama.js';
export {
  DEFAULT_IEBIN_LIMITS,
  parseIebinHeader,
  headerChecksum,
  validateIebinHeader,
  tensorMatrixDims,
  type IebinHeader,
  type IebinLimits,
  type TensorEntry,
  type TokenizerSpec,
  type Llama2cTokenizerSpec,
  type SpmTokenizerSpec,
  type Gpt2TokenizerSpec,
  type HfTokenizerRef,
  type Provenance,
  type SourceFile,
} from './header.js';
export { IebinReader, type BinViews, type TensorView, type IebinOpenOptions, type VerifyReport, type VerifyProblem } from './reader.js';
export {
  IebinWriter,
  formatHeaderJson,
  removeStalePartials,
  IEBIN_COMMIT_STEPS,
  type IebinCommitStep,
  type IebinWriterOptions,
  type TensorSpec,
  type TensorData,
  type TokenizerInput,
  type QuantParams,
} from './writer.js';
export {
  applyLayout,
  removeLayout,
  decodeTensor,
  encodeFloat,
  floatElements,
  quantPlanes,
  scalesToF32,
  type TensorDescriptor,
  type QuantPlanes,
} from './tensor.js';
export {
  chatTemplateProblem,
  specialTokenProblem,
  pickChatTemplate,
  pickSpecialToken,
  MAX_CHAT_TEMPLATE_BYTES,
  MAX_SPECIAL_TOKEN_BYTES,
  type ChatTemplateSpec,
} from './chat-template.js';
export { streamingRead, readChunks, readStreams, type ModelSource, type SourceTensor, type StreamingRead } from './source.js';
export { exportIebin, exportLayout, floatValues, type ConvertOptions, type ConvertedTensor, type TensorTransform } from './export-iebin.js';
export { openLlama2c, parseLlama2cHeader, parseLlama2cTokenizer, type Llama2cHeader } from './llama2c.js';
export { writeGguf, joinBlocks, GGUF_WRITE_TYPES, type GgufWriteType, type WriteGgufOptions } from './gguf-writer.js';
export {
  openGguf,
  parseGguf,
  readGguf,
  splitBlocks,
  GGML_TYPES,
  GGUF_MAGIC,
  DEFAULT_GGUF_LIMITS,
  type GgufFile,
  type GgufTensorInfo,
  type GgufValue,
  type GgufArray,
  type GgufLimits,
} from './gguf.js';
export {
  parseSafetensors,
  parseSafetensorsHeader,
  readSafetensorsHeader,
  writeSafetensors,
  SAFETENSORS_DTYPE_BYTES,
  DEFAULT_SAFETENSORS_LIMITS,
  type SafetensorsEntry,
  type SafetensorsHeader,
  type SafetensorsLimits,
  type SafetensorsTensorSpec,
} from './safetensors.js';
export {
  openHfDir,
  writeHfDir,
  readHfChatTemplate,
  hfConfigToModelConfig,
  modelConfigToHfConfig,
  canonicalHfName,
  hfName,
  type OpenHfOptions,
  type WriteHfOptions,
  type HfConfigExtras,
} from './hf.js';
export {
  synthModel,
  synthTensorValues,
  synthVocabulary,
  synthHfTokenizerJson,
  synthHarmonyVocabulary,
  synthGpt2TokenizerJson,
  harmonySpecialIds,
  gpt2ByteChars,
  cutLayers,
  SYNTH_PRESETS,
  Rng,
  SYNTH_CHAT_TEMPLATE,
  type SynthPreset,
  type SynthOptions,
} from './synth.js';
export {
  writeFileAtomic,
  writeNewFile,
  createTempFile,
  createStagingDir,
  commitRename,
  discardTemp,
  fsyncDir,
  syncFile,
  removeStaleTemps,
  tempName,
  makeDirs,
  type TempFile,
} from './safe-write.js';
export {
  RandomAccessFile,
  fileKind,
  readRegularFile,
  type ReadRegularFileOptions,
  jsonErrorPosition,
  sha256File,
  sha256Bytes,
  type ErrorFactory,
} from './file.js';
export { modelFileKind } from './sniff.js';
export { BYTE_LEVEL_PRE_PATTERNS, byteLevelBpeTokenizerJson, byteLevelPreDefaults, byteLevelPreSplits } from './byte-level-bpe.js';
