/**
 * A harmony (gpt-oss) assistant turn run as one or more generations over one growing prompt. Text
 * ie writes for the model goes in between (a forced call's header, the final channel's header
 * before a constrained answer), and every token, the model's and ie's, passes through one
 * HarmonyReader, so the turn reads as if the model had written it all. Each generation after the
 * first finds the turn so far in the KV cache (`reusePrefix`), so only ie's text is prefilled.
 */
import type { Generation } from '../generation/generation.js';
import type { ChatCompletion, GenerateOptions, Piece, StopReason } from '../generation/types.js';
import type { GenerationMetrics } from '../metrics.js';
import type { StreamDecoder } from '../tokenizer/types.js';
import { HarmonyReader, type HarmonySpecial } from './harmony.js';

export type HarmonyIds = Readonly<Record<HarmonySpecial, number>> & { readonly '<|constrain|>'?: number };

export class HarmonyTurn {
  readonly reader: HarmonyReader;
  private readonly ids: number[];
  private readonly runs: Generation[] = [];
  /** Tokens of the turn: the model's, and the stop tokens it ended a generation with before the last. */
  private readonly tokens: number[] = [];
  private left: number;

  constructor(
    prompt: readonly number[],
    private readonly generate: (ids: readonly number[], options: GenerateOptions) => Generation,
    private readonly encode: (text: string) => number[],
    readonly specials: HarmonyIds,
    decoder: StreamDecoder,
    onText: ((text: string, channel: string, piece?: Piece) => void) | undefined,
    maxTokens: number,
  ) {
    this.ids = [...prompt];
    this.reader = new HarmonyReader(
      specials,
      (t) => decoder.push(t),
      onText,
      () => decoder.flush(),
    );
    this.left = maxTokens;
  }

  /** Tokens the turn may still generate. */
  get budget(): number {
    return this.left;
  }

  /** Writes `text` (harmony's format, special tokens included) into the turn for the model. */
  write(text: string): void {
    for (const t of this.encode(text)) {
      this.ids.push(t);
      this.reader.push(t);
    }
  }

  /** Ends the turn with `token` (a constrained answer complete: `<|return|>`; a forced call: `<|call|>`) as the model would. */
  close(token: '<|return|>' | '<|call|>'): void {
    this.reader.push(this.specials[token]);
  }

  /** One generation from the turn so far, within the turn's budget (and `options.maxTokens`); its tokens and stop token join the turn. */
  async run(options: GenerateOptions): Promise<Generation> {
    const g = this.generate(this.ids, { ...options, maxTokens: Math.min(options.maxTokens ?? this.left, this.left) });
    // The model's tokens with the text the generation released for them, so that a stop string is
    // cut off here as in generate()'s text; with logprobs, each goes to onText with its piece (ie's
    // own text has none).
    for await (const p of g) this.reader.push(p.token, options.logprobs && p.token >= 0 ? p : undefined, p.text);
    this.runs.push(g);
    this.left -= g.tokens.length;
    this.ids.push(...g.tokens);
    this.tokens.push(...g.tokens);
    if (g.stopToken !== undefined) {
      this.reader.push(g.stopToken);
      this.ids.push(g.stopToken);
      this.tokens.push(g.stopToken);
    }
    return g;
  }

  /** The turn as chat() returns it; `calls`: whether the turn's calls are read (tools were offered). */
  completion(calls: boolean): ChatCompletion {
    this.reader.finish();
    const last = this.runs[this.runs.length - 1];
    // The last generation's stop token ends the turn, as generate()'s never joins its tokens.
    const tokens = last.stopToken !== undefined ? this.tokens.slice(0, -1) : this.tokens;
    const r = this.reader;
    return {
      final: r.final,
      analysis: r.analysis,
      messages: r.messages,
      ended: r.ended,
      toolCalls: calls && r.ended === 'call' ? r.toolCalls : [],
      tokens,
      stopReason: last.stopReason as StopReason,
      metrics: joinMetrics(this.runs.map((g) => g.metrics as GenerationMetrics)),
    };
  }
}

/** The generations of one turn as one: the first's prompt and time to first token, every one's tokens and time. */
function joinMetrics(all: readonly GenerationMetrics[]): GenerationMetrics {
  const [first] = all;
  const last = all[all.length - 1];
  if (all.length === 1) return first;
  const sum = (k: 'generatedTokens' | 'prefillMs' | 'decodeMs') => all.reduce((a, m) => a + m[k], 0);
  return {
    ...last,
    promptTokens: first.promptTokens,
    cachedTokens: first.cachedTokens,
    ttftMs: first.ttftMs,
    generatedTokens: sum('generatedTokens'),
    prefillMs: sum('prefillMs'),
    decodeMs: sum('decodeMs'),
  };
}
