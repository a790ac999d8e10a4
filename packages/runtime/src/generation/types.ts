/** What a generation takes and gives: the public shapes shared by Engine, Sequence and BatchScheduler. */
import type { HarmonyMessage, HarmonyOptions } from '../chat/harmony.js';
import type { PromptTools, ToolCall, ToolChoice } from '../chat/tools.js';
import type { GenerationMetrics } from '../metrics.js';
import type { SamplingOptions } from '../sampler.js';

export interface GenerateOptions extends SamplingOptions {
  /** Tokens to generate at most. Default 256. */
  maxTokens?: number;
  /** Strings that end the generation (not included in the output). */
  stop?: string[];
  signal?: AbortSignal;
  /** Report each token's log-probability under the model (before temperature and filters). */
  logprobs?: boolean;
  /**
   * With logprobs or promptLogprobs: also the N likeliest tokens of each position and theirs (0..20;
   * OpenAI's top_logprobs). Default 0.
   */
  topLogprobs?: number;
  /**
   * Score the prompt as well: `generation.promptLogprobs` gets each prompt token's log-probability
   * given the tokens before it (OpenAI's completions `echo` with `logprobs`; perplexity). The whole
   * prompt runs (no prefix is reused from the cache), in chunks of the rows the model's logits
   * buffer holds. Default false.
   */
  promptLogprobs?: boolean;
  /** Prepend BOS to a text prompt. Default true. */
  addBos?: boolean;
  /** Keep generating through end-of-sequence tokens, up to maxTokens (benchmarks; llama.cpp's --ignore-eos). Default false. */
  ignoreEos?: boolean;
  /** Token ids that end the generation besides the tokenizer's own (EOS): harmony's `<|return|>`, `<|call|>`. */
  stopTokens?: readonly number[];
  /**
   * Keep the keys and values of the prompt's longest common prefix with what the KV cache holds
   * (the previous generation's prompt and output) and prefill only the rest; under a
   * BatchScheduler, a prefix another running request holds (n choices of one prompt, one system
   * prompt) is copied from its slot once its prefill gets there. `metrics.cachedTokens` says how
   * many were kept or copied. The rest of the prompt runs in other chunks than a full prefill's:
   * with FP32 activations the logits agree to a few 1e-6, with int8 activations (where the
   * prefill's int8 GEMM and the decode's int8 GEMV round differently) to about 1e-2 on a
   * random-weight TinyLlama, so a near-tie can pick another token. Default false for generate()
   * and complete() (one-shot calls and benchmarks prefill the whole prompt), true for chat() and
   * chat sessions.
   */
  reusePrefix?: boolean;
  /**
   * Constrain the output to this JSON schema (see docs/structured-output.md for the keywords
   * supported): the text always parses and validates. An unsupported or malformed schema throws
   * a SchemaError (IE_SCHEMA_*) when the request is made, before any prefill.
   */
  jsonSchema?: object | boolean;
  /** Constrain the output to this GBNF grammar (llama.cpp's format, start rule `root`); a bad grammar throws a GrammarError (IE_GRAMMAR_*). */
  grammar?: string;
  /** Constrain the output to any JSON object (OpenAI's `response_format: {type: "json_object"}`). */
  json?: boolean;
}

export interface ChatOptions extends GenerateOptions, HarmonyOptions {
  /**
   * Streams the answer as it is decoded, with its channel (`final`, `analysis`, `commentary`; a chat
   * template's answer is `final`). With `logprobs`, called for every token of a message's content
   * with its piece (harmony's headers and special tokens have none), text "" while a character is
   * incomplete.
   */
  onText?: (text: string, channel: string, piece?: Piece) => void;
  /** More variables for a chat template (a template's own switches, such as `enable_thinking`). */
  templateVariables?: Readonly<Record<string, unknown>>;
  /**
   * With `tools`: whether the model may call one (`auto`, the default), is not offered them
   * (`none`), must call one (`required`), or must call the one named (`{ name }`). A forced call's
   * arguments follow the function's parameters schema (see docs/structured-output.md for the
   * keywords supported).
   */
  toolChoice?: ToolChoice;
  /**
   * The name gpt-oss's developer message gives `jsonSchema` (harmony's `# Response Formats`; OpenAI's
   * `json_schema.name`): 1 to 64 letters, digits, `_` or `-`. Default `response`.
   */
  jsonSchemaName?: string;
}

/** A conversation as the model reads it: the rendered text and its token ids. */
export interface ChatPrompt {
  /** `harmony` for gpt-oss, `template` for the model's own chat template. */
  format: 'harmony' | 'template';
  text: string;
  ids: number[];
  /** Tokens that end the assistant's turn, besides EOS and the model's stop ids. */
  stopTokens: number[];
  /** Set when functions were offered: how the answer's calls are read, and the call a choice forces. */
  tools?: PromptTools;
}

export interface ChatCompletion {
  /** The answer (harmony's final channel; the whole answer with a chat template). */
  final: string;
  /** The model's reasoning: harmony's analysis channel, or a chat template's `<think>` block (DeepSeek-R1, Qwen3); '' when none. */
  analysis: string;
  messages: HarmonyMessage[];
  /** `return`: the turn ended (for a chat template: at EOS or an end-of-turn token); `call`: a tool call; undefined: stopped by length, stop string or context. */
  ended: 'return' | 'call' | undefined;
  /** The functions the model called (`ended` is `call`), with their arguments as JSON text; [] when none. */
  toolCalls: ToolCall[];
  tokens: number[];
  stopReason: StopReason;
  metrics: GenerationMetrics;
}

/** A token and its log-probability under the model. */
export interface TokenLogprob {
  token: number;
  logprob: number;
}

/** A prompt token's log-probability given the tokens before it: null for the first (nothing predicts it). */
export interface PromptLogprob {
  token: number;
  logprob: number | null;
  /** With topLogprobs N: the N likeliest tokens at its position, likeliest first (none for the first token). */
  topLogprobs?: TokenLogprob[];
}

/**
 * One generated token, handed out once its text is out: with stop strings a piece waits while its
 * text could begin one, and the tokens that make up a stop string are never handed out. Token -1:
 * text alone (what the decoder held at the end).
 */
export interface Piece {
  token: number;
  /** Text this token completes (may be "" while a UTF-8 character is incomplete; at a stop string, its text before it). */
  text: string;
  logprob?: number;
  /** With topLogprobs N: the step's N likeliest tokens, likeliest first (ties by id). */
  topLogprobs?: TokenLogprob[];
}

export type StopReason = 'eos' | 'stop' | 'length' | 'context';

export interface Completion {
  text: string;
  tokens: number[];
  stopReason: StopReason;
  metrics: GenerationMetrics;
  /** With promptLogprobs: each prompt token's log-probability (see GenerateOptions.promptLogprobs). */
  promptLogprobs?: PromptLogprob[];
}
