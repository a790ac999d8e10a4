/**
 * Multi-turn chat over one engine (node-llama-cpp's LlamaChatSession): the session keeps the
 * history; each turn renders all of it and runs it through `engine.chat`, whose prefix reuse finds
 * the previous turns' keys and values still in the KV cache, so only the new message (and the
 * template's text around it) is prefilled.
 */
import { InvalidOptionError } from '../errors.js';
import type { ChatCompletion, ChatOptions } from '../generation/types.js';
import type { ChatMessage } from './harmony.js';
import type { ToolCall, ToolDefinition } from './tools.js';

/** A function the session runs for the model (node-llama-cpp's defineChatSessionFunction). */
export interface ChatSessionFunction {
  description?: string;
  /** The arguments' JSON schema; the handler gets them parsed. */
  parameters?: Record<string, unknown>;
  /** Its result goes back to the model as the tool message (a string as it is, anything else as JSON). */
  // biome-ignore lint/suspicious/noExplicitAny: the arguments follow `parameters`, a schema the type cannot see
  handler: (args: any) => unknown | Promise<unknown>;
}

export interface ChatSessionOptions extends ChatOptions {
  /** A system message that opens the conversation. */
  systemPrompt?: string;
  /** Earlier turns to continue from (after the system prompt). */
  history?: readonly ChatMessage[];
  /**
   * Functions the model may call: prompt() runs each call's handler and gives the model its result,
   * until the model answers; calls past `maxFunctionRounds` rounds of them (default 8) end the turn
   * unanswered (`ended: 'call'`), as does a call to a function not here.
   */
  functions?: Readonly<Record<string, ChatSessionFunction>>;
  maxFunctionRounds?: number;
}

/** The functions as chat()'s tools. */
function toolsOf(functions: Readonly<Record<string, ChatSessionFunction>>): ToolDefinition[] {
  return Object.entries(functions).map(([name, f]) => ({
    name,
    ...(f.description !== undefined ? { description: f.description } : {}),
    ...(f.parameters !== undefined ? { parameters: f.parameters } : {}),
  }));
}

/** A call's result as the tool message's content: a handler's error as `{"error": message}`, so the model can recover. */
async function runCall(functions: Readonly<Record<string, ChatSessionFunction>>, call: ToolCall): Promise<string> {
  const f = Object.hasOwn(functions, call.name) ? functions[call.name] : undefined;
  if (!f) return JSON.stringify({ error: `no function named ${call.name}` });
  let args: unknown;
  try {
    args = call.arguments.trim() ? JSON.parse(call.arguments) : {};
  } catch {
    return JSON.stringify({ error: `the arguments are not JSON: ${call.arguments.slice(0, 200)}` });
  }
  try {
    const out = await f.handler(args);
    return typeof out === 'string' ? out : (JSON.stringify(out) ?? 'null');
  } catch (e) {
    return JSON.stringify({ error: e instanceof Error ? e.message : String(e) });
  }
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
  prompt(text: string, options: Omit<ChatSessionOptions, 'systemPrompt' | 'history'> = {}): Promise<ChatCompletion> {
    const run = async () => {
      const { functions, maxFunctionRounds, ...chat } = { ...this.defaults, ...options };
      const rounds = maxFunctionRounds ?? 8;
      if (!Number.isSafeInteger(rounds) || rounds < 0)
        throw new InvalidOptionError(
          'maxFunctionRounds',
          `must be a non-negative integer (0: calls end the turn unanswered), got ${rounds}`,
        );
      if (functions !== undefined && (typeof functions !== 'object' || functions === null))
        throw new InvalidOptionError('functions', 'must be an object of name -> {description?, parameters?, handler}');
      for (const [name, f] of Object.entries(functions ?? {}))
        if (typeof f?.handler !== 'function') throw new InvalidOptionError(`functions.${name}.handler`, 'must be a function');
      const tools = functions && Object.keys(functions).length ? toolsOf(functions) : undefined;
      const messages: ChatMessage[] = [...this.turns, { role: 'user', content: text }];
      for (let round = 0; ; round++) {
        const r = await this.engine.chat(messages, { ...chat, ...(tools ? { tools: [...(chat.tools ?? []), ...tools] } : {}) });
        // A call's reasoning stays with it (harmony gives the model its chain of thought across the call).
        messages.push({
          role: 'assistant',
          content: r.final,
          ...(r.toolCalls.length ? { toolCalls: r.toolCalls, ...(r.analysis ? { reasoning: r.analysis } : {}) } : {}),
        });
        // Calls to the session's functions are run and answered; any other call is the caller's to answer.
        if (!functions || !r.toolCalls.length || r.toolCalls.some((c) => !Object.hasOwn(functions, c.name))) {
          this.turns = messages;
          return r;
        }
        // Out of rounds: the turn ends on its calls (r.ended 'call'), unanswered, as the caller's to see.
        if (round >= rounds) {
          this.turns = messages;
          return r;
        }
        for (const call of r.toolCalls) messages.push({ role: 'tool', name: call.name, content: await runCall(functions, call) });
        // A forced call would force one every round: after the first, the model may answer.
        if (chat.toolChoice !== undefined && chat.toolChoice !== 'none') chat.toolChoice = 'auto';
      }
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
