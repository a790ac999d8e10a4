/**
 * @ie/runtime — the ie engine: `Engine.load(dir, { precision })`, then stream tokens from
 * `engine.generate(prompt, options)`, or chat: `engine.chat(messages)`, `engine.chatSession()`.
 * Underneath: `Model.open(dir, { sequences })` (weights, tokenizer, shared), `model.sequence()` (one
 * KV slot), and `new BatchScheduler(model)`, which decodes many requests in one step.
 */
export {
  Engine,
  Generation,
  type GenerateOptions,
  type ChatOptions,
  type ChatCompletion,
  type ChatPrompt,
  type Piece,
  type PromptLogprob,
  type TokenLogprob,
  type Completion,
  type StopReason,
  type EngineInfo,
} from './engine.js';
export {
  renderHarmony,
  HarmonyReader,
  HARMONY_SPECIALS,
  type ChatMessage,
  type HarmonyMessage,
  type HarmonyOptions,
  type ReasoningEffort,
} from './chat/harmony.js';
export { ChatTemplate, ChatTemplateError, encodeChatPrompt, strftime, type RenderOptions } from './chat/template.js';
export { ChatSession, type ChatSessionOptions, type ChatSessionFunction, type ChatEngine } from './chat/session.js';
export type { ToolCall, ToolChoice, ToolDefinition, PromptTools } from './chat/tools.js';
export { Model, type ModelOptions } from './model.js';
export type { MeanWithError, PerplexityOptions, PerplexityResult, ReferenceComparison } from './perplexity.js';
export { Sequence, type SequenceOptions } from './sequence.js';
export { BatchScheduler, type BatchSchedulerOptions, type BatchStats } from './batch/scheduler.js';
export {
  resolveContextOptions,
  resolveEngineOptions,
  type ActivationsMode,
  type EngineOptions,
  type ResolvedContextOptions,
  type ResolvedEngineOptions,
} from './options.js';
export { WEIGHT_MEMORY_MODES, planWeightMemory, type WeightMemoryMode, type WeightMemoryPlan, type SystemMemory } from './weight-memory.js';
export { PRECISIONS, describeMix, filePrecisionMix, type Precision, type PrecisionMix, type WeightKind } from './precision.js';
export { Sampler, resolveSampling, type SamplingOptions, type ResolvedSampling } from './sampler.js';
export { percentile, type GenerationMetrics } from './metrics.js';
export {
  IeRuntimeError,
  ContextOverflowError,
  GenerationAbortedError,
  InvalidOptionError,
  StepError,
  RUNTIME_ERROR_CODES,
  type RuntimeErrorCode,
} from './errors.js';
export {
  createTokenizer,
  buildTokenizer,
  probeTokenizer,
  readHfTokenizerJson,
  MAX_TOKENIZER_JSON_BYTES,
  TOKENIZER_PROBE_TEXT,
  Llama2cTokenizer,
  SpmTokenizer,
  HfTokenizer,
  leastTokens,
  type Tokenizer,
  type StreamDecoder,
} from './tokenizer/index.js';
export {
  ensureGgufCache,
  ggufCacheKey,
  isGgufFile,
  defaultGgufCacheDir,
  GgufCacheError,
  type GgufCacheOptions,
  type GgufCacheEntry,
  type GgufConvertProgress,
} from './gguf-cache.js';
export { ropeTables, type KvCacheType } from './forward.js';
export type { EmbedInput, EmbedOptions, EmbedPooling } from './embed.js';
export { quantizeModel, AWQ_ALPHAS, GATE_ROWS, SEARCH_ROWS, type QuantizeModelOptions, type QuantizeResult } from './quantize.js';
export {
  createConstraint,
  constraintVocabulary,
  schemaToGrammar,
  compileGrammar,
  GrammarMatcher,
  JSON_GRAMMAR,
  JSON_VALUE_GRAMMAR,
  StructuredOutputError,
  GrammarError,
  SchemaError,
  STRUCTURED_ERROR_CODES,
  type StructuredErrorCode,
  type ConstraintSpec,
  type ConstraintVocabulary,
  type TokenConstraint,
} from './structured/index.js';
