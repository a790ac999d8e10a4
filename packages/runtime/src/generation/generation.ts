/** An ongoing generation: iterate it for pieces; `metrics` and `stopReason` are set when it ends. */
import { InvalidOptionError } from '../errors.js';
import type { GenerationMetrics } from '../metrics.js';
import type { Completion, Piece, PromptLogprob, StopReason } from './types.js';

export class Generation implements AsyncIterable<Piece> {
  metrics: GenerationMetrics | undefined;
  stopReason: StopReason | undefined;
  /** The token that ended it (EOS or one of `stopTokens`), when stopReason is 'eos'. */
  stopToken: number | undefined;
  text = '';
  readonly tokens: number[] = [];
  /** With promptLogprobs: each prompt token's log-probability, set once the prompt has run (before the first piece). */
  promptLogprobs: PromptLogprob[] | undefined;
  private started = false;

  /** @internal */
  constructor(private readonly body: (g: Generation) => AsyncGenerator<Piece>) {}

  [Symbol.asyncIterator](): AsyncIterator<Piece> {
    if (this.started) throw new InvalidOptionError('generate', 'a generation can be iterated once');
    this.started = true;
    return this.body(this);
  }

  /** Runs it to the end: the whole text with its metrics. */
  async complete(): Promise<Completion> {
    for await (const _ of this) {
      /* drain */
    }
    return {
      text: this.text,
      tokens: this.tokens,
      stopReason: this.stopReason as StopReason,
      metrics: this.metrics as GenerationMetrics,
      ...(this.promptLogprobs ? { promptLogprobs: this.promptLogprobs } : {}),
    };
  }
}
