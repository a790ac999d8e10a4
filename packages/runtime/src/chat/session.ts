/**
 * Multi-turn chat over one engine (node-llama-cpp's LlamaChatSession): the session keeps the
 * history; each turn renders all of it and runs it through `engine.chat`, whose prefix reuse finds
 * the previous turns' keys and values still in the KV cache, so only the new message (and the
 * template's text around it) is prefilled.
 */
import type { ChatCompletion, ChatOptions } from '../generation/types.js';
import type { ChatMessage } from './harmony.js';

export interface ChatSessionOptions extends ChatOptions {
  /** A system message that opens the conversation. */
  systemPrompt?: string;
  /** Earlier turns to continue from (after the system prompt). */
  history?: readonly ChatMessage[];
}

/** What a session needs from the engine. */
export interface ChatEngine {
  chat(messages: readonly ChatMessage[], options?: ChatOptions): Promise<ChatCompletion>;
}

export class ChatSession {
  private turns: ChatMessage[];
  /** Turns run one after the other: a second prompt() waits for the first to be in the history. */
  private queue: Promise<unknown> = Promise.resolve();
  private readonly defaults: ChatOptions;

  constructor(
    private readonly engine: ChatEngine,
    options: ChatSessionOptions = {},
  ) {
    const { systemPrompt, history, ...defaults } = options;
    this.defaults = defaults;
    this.turns = [...(systemPrompt !== undefined ? [{ role: 'system' as const, content: systemPrompt }] : []), ...(history ?? [])];
  }

  /** The conversation so far (a copy). */
  get history(): ChatMessage[] {
    return this.turns.map((m) => ({ ...m }));
  }

  /**
   * Sends `text` as the user's message and answers it. The options override the session's for this
   * turn. The user's message and the answer join the history only when the turn completes: an
   * aborted or failed turn leaves the history as it was.
   */
  prompt(text: string, options: ChatOptions = {}): Promise<ChatCompletion> {
    const run = async () => {
      const messages: ChatMessage[] = [...this.turns, { role: 'user', content: text }];
      const r = await this.engine.chat(messages, { ...this.defaults, ...options });
      this.turns = [...messages, { role: 'assistant', content: r.final, ...(r.toolCalls.length ? { toolCalls: r.toolCalls } : {}) }];
      return r;
    };
    const turn = this.queue.then(run, run);
    this.queue = turn.catch(() => undefined);
    return turn;
  }

  /** Starts over, from the system prompt and `history` given (none: an empty conversation). */
  reset(options: Pick<ChatSessionOptions, 'systemPrompt' | 'history'> = {}): void {
    this.turns = [
      ...(options.systemPrompt !== undefined ? [{ role: 'system' as const, content: options.systemPrompt }] : []),
      ...(options.history ?? []),
    ];
  }
}
