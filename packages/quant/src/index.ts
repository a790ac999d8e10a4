/**
 * @ie/quant — weight quantization for ie: quantization manifests (policy and expanded forms,
 * one JSON Schema), post-training quantization (RTN, clip search, activation-aware scaling),
 * the calibration gate's metrics, the packers for IEBIN's i8 and q4 layouts, and the export
 * hook that packs a model per manifest.
 */
export { QuantError, ManifestError, QUANT_ERROR_CODES, type QuantErrorCode, type ManifestProblem } from './errors.js';
export { packBlocks } from './blocks/pack.js';
export {
  packInt8,
  packInt4Groupwise,
  unpackInt8,
  unpackInt4Groupwise,
  quantizeGroup,
  groupExtremes,
  type GroupExtremes,
  type PackedTensor,
  type Int8PackOptions,
  type Int4PackOptions,
  type UnpackedInt8,
  type UnpackedInt4,
  type GroupKind,
  type GroupCodes,
} from './pack.js';
export {
  MANIFEST_SCHEMA,
  MANIFEST_VERSION,
  type Manifest,
  type Policy,
  type PolicyRule,
  type ExpandedManifest,
  type ManifestEntry,
  type GateThresholds,
  type CalibrationSettings,
  type EntryTransform,
  type QuantMethod,
  type TensorLayoutSpec,
} from './manifest/schema.js';
export {
  parseManifest,
  readManifest,
  manifestCalibrationPath,
  readCalibrationText,
  MAX_MANIFEST_BYTES,
  MAX_CALIBRATION_BYTES,
  manifestSha256,
  gateThresholds,
  DEFAULT_GATE,
  DEFAULT_CALIBRATION,
  type LoadedManifest,
} from './manifest/parse.js';
export { compileGlob, compileRegex, globToRegExp, PatternSyntaxError, type NamePattern } from './manifest/glob.js';
export {
  resolvePolicy,
  plansFromExpanded,
  schemeOf,
  describeQuant,
  type ModelTensor,
  type TensorPlan,
  type FinalScheme,
  type LayoutOptions,
} from './manifest/resolve.js';
export { tensorSha256, modelFingerprint, canonicalJson } from './manifest/fingerprint.js';
export { diffAgainstManifest, type StoredTensor, type ManifestMismatch } from './manifest/diff.js';
export {
  CLIP_GRID,
  searchClip,
  quantizeMatrix,
  quantizeMatrixAsync,
  dequantizeMatrix,
  applyTransforms,
  activationScales,
  encodeScales,
  decodeScales,
  type QuantTarget,
} from './ptq/quantize.js';
export {
  outputQuality,
  klDivergence,
  EndToEndMeter,
  tensorPasses,
  gateFailures,
  type OutputQuality,
  type EndToEnd,
} from './gate/metrics.js';
export {
  encodePlanned,
  manifestScales,
  manifestTransform,
  quantizationRecord,
  type TransformOptions,
  type QuantizationRecord,
} from './export/transform.js';
export { planExport, modelTensors, type ExportPlan } from './export/prepare.js';
export { ClipSearchPool, PARALLEL_MIN_WEIGHTS, type ClipSearchPoolOptions } from './ptq/pool.js';
