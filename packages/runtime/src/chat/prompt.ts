/**
 * The prompt a chat turn runs, in the model's own format: harmony for gpt-oss, else the model's
 * chat template (from model.ie.json) rendered and tokenized with its special tokens; and a chat
 * turn driven over any generate() (Engine's or BatchScheduler's), its answer read per format.
 */
import type { IebinHeader, ModelConfig } from '@ie/format';
import { IeRuntimeError, InvalidOptionError } from '../errors.js';
import type { Generation } from '../generation/generation.js';
import type { ChatCompletion, ChatOptions, ChatPrompt, GenerateOptions, Piece, StopReason } from '../generation/types.js';
import type { GenerationMetrics } from '../metrics.js';
import { checkTextFits, type Tokenizer } from '../tokenizer/index.js';
import { HARMONY_SPECIALS, renderHarmonyParts, type ChatMessage, type HarmonySpecial } from './harmony.js';
import { ChatTemplate, encodeChatPrompt } from './template.js';
import { HarmonyTurn } from './harmony-turn.js';
import { ReasoningSplitter, promptOpensThinking, templateThinks } from './reasoning.js';
import { constraintOption } from '../generation/request.js';
import {
  type PromptTools,
  type ToolCall,
  type ToolDefinition,
  argumentsSchema,
  checkForcedSchemas,
  checkTools,
  FUNCTION_NAME,
  forcedTools,
  HERMES_CALLS,
  JSON_CALLS,
  templateCallSyntax,
  templateTools,
} from './tools.js';

export class ChatPrompter {
  /** The model's chat template, parsed at the first chat. */
  private template: ChatTemplate | undefined;
  private specials: Map<string, number> | undefined;
  private harmony: (Record<HarmonySpecial, number> & { '<|constrain|>'?: number }) | undefined;

  constructor(
    private readonly path: string,
    private readonly config: ModelConfig,
    private readonly header: IebinHeader,
    private readonly tokenizer: Tokenizer,
    /** The model's positions a slot holds: a conversation to run that cannot fit is refused before it is encoded. */
    private readonly contextLength: number,
  ) {}

  /**
   * The prompt chat() runs for `messages`: harmony for gpt-oss, else the model's chat template
   * rendered (with `add_generation_prompt`, `bos_token`, `eos_token`) and tokenized with its special
   * tokens, BOS added only where the vocabulary adds one and the text does not start with it.
   */
  prompt(messages: readonly ChatMessage[], options: ChatOptions = {}): ChatPrompt {
    return this.render(messages, options, false);
  }

  /** prompt(); `toRun`: refuse a text that cannot fit the context before encoding it (checkTextFits). */
  private render(messages: readonly ChatMessage[], options: ChatOptions, toRun: boolean): ChatPrompt {
    checkMessages(messages);
    const fits = (text: string) => {
      if (toRun) checkTextFits(text, this.tokenizer, this.contextLength, 'the conversation');
    };
    // The functions offered (none for toolChoice 'none') and those a choice forces a call among.
    if (options.toolChoice !== undefined && options.tools === undefined) throw new InvalidOptionError('toolChoice', 'needs tools');
    const offer = options.tools === undefined ? undefined : checkTools(options.tools, options.toolChoice);
    const tools = offer && offer.choice !== 'none' ? offer.tools : [];
    const force = offer ? forcedTools(offer.tools, offer.choice) : undefined;
    if (force && constraintOption(options) !== undefined)
      throw new InvalidOptionError(
        'toolChoice',
        'forces a call whose arguments follow its parameters: it cannot be combined with jsonSchema, grammar or json',
      );
    if (offer && force) checkForcedSchemas(offer.tools, force);
    const promptTools = (syntax: PromptTools['syntax']): Pick<ChatPrompt, 'tools'> =>
      tools.length ? { tools: { syntax, names: tools.map((t) => t.name), ...(force ? { force } : {}) } } : {};
    if (tools.length && !force && constraintOption(options) !== undefined) refuseToolsWithFormat();
    if (options.jsonSchemaName !== undefined && (typeof options.jsonSchemaName !== 'string' || !FUNCTION_NAME.test(options.jsonSchemaName)))
      throw new InvalidOptionError(
        'jsonSchemaName',
        `must be 1 to 64 letters, digits, _ or -, got ${JSON.stringify(options.jsonSchemaName)}`,
      );
    if (this.config.architecture === 'gpt-oss') {
      messages.forEach((m, i) => {
        if (m.role === 'tool' && !m.name)
          throw new InvalidOptionError(
            `messages[${i}].name`,
            "is required on a tool message in harmony: the function whose result it is (it is written as functions.{name}'s message)",
          );
      });
      const ids = this.harmonyIds();
      const responseFormat =
        options.jsonSchema !== undefined ? { name: options.jsonSchemaName ?? 'response', schema: options.jsonSchema } : undefined;
      const parts = renderHarmonyParts(messages, { ...options, tools, responseFormat });
      fits(parts.map((p) => p.text).join(''));
      const encode = (text: string) => (text ? this.tokenizer.encode(text, { bos: false }) : []);
      return {
        format: 'harmony',
        text: parts.map((p) => p.text).join(''),
        // The format's text with its special tokens; the messages' contents as ordinary text only.
        ids: parts.flatMap((p) => (p.content ? this.tokenizer.encodeOrdinary(p.text) : encode(p.text))),
        stopTokens: [ids['<|return|>'], ids['<|call|>']],
        ...promptTools('harmony'),
      };
    }
    const chat = this.header.chat;
    if (!chat)
      throw new IeRuntimeError(
        'IE_CHAT_NO_TEMPLATE',
        `${this.path}: the model has no chat template (model.ie.json has no chat member), so chat() cannot write its conversation: pass a prompt written in the model's own format to generate() instead, or convert the model from a Hugging Face directory whose tokenizer_config.json has a chat_template (or a GGUF file with tokenizer.chat_template)`,
      );
    this.template ??= new ChatTemplate(chat.template, `${this.path}: the model's chat template`);
    const syntax = templateCallSyntax(chat.template);
    if (tools.length && !syntax)
      throw new IeRuntimeError(
        'IE_CHAT_TOOLS_UNSUPPORTED',
        `${this.path}: the model's chat template has no tool-call format ie reads (templates that read \`tools\` and write <tool_call> JSON blocks, as Qwen2.5, Qwen3 and Hermes do, or a call's "parameters" JSON, as Llama 3.1-3.3 do): leave tools out, or describe the functions in a system message and read the answer yourself`,
      );
    const specials = this.specialPieces();
    const bosToken = chat.bos_token ?? this.pieceOf(this.config.bos_id);
    const eosToken = chat.eos_token ?? this.pieceOf(this.config.eos_id);
    const text = this.template.render(messages, {
      bosToken,
      eosToken,
      now: options.currentDate === undefined ? undefined : parseDate(options.currentDate),
      variables: options.templateVariables,
      tools: tools.length ? templateTools(tools) : undefined,
    });
    fits(text);
    const ids = encodeChatPrompt(this.tokenizer, text, { bosToken, specials });
    // The template's end-of-turn text (Qwen2's <|im_end|>) ends the answer when it is one token.
    const eot = eosToken === undefined ? undefined : (specials.get(eosToken) ?? this.tokenizer.tokenId?.(eosToken));
    return { format: 'template', text, ids, stopTokens: eot === undefined ? [] : [eot], ...(syntax ? promptTools(syntax) : {}) };
  }

  /**
   * A chat turn over `generate`: the prompt's common prefix with the cache is kept (`reusePrefix`,
   * default true), the answer streams to `onText` and is read per format (harmony's channels).
   * `conversation`: the messages, or the ChatPrompt prompt() gave for them (not rendered again).
   */
  async complete(
    generate: (ids: readonly number[], options: GenerateOptions) => Generation,
    conversation: readonly ChatMessage[] | ChatPrompt,
    options: ChatOptions = {},
  ): Promise<ChatCompletion> {
    let prompt: ChatPrompt;
    if (Array.isArray(conversation)) prompt = this.render(conversation, options, true);
    else {
      prompt = checkChatPrompt(conversation, this.config.architecture === 'gpt-oss' ? 'harmony' : 'template');
      // A rendered prompt cannot take what shapes the rendering: refused, not silently ignored.
      for (const name of RENDER_OPTIONS)
        if (options[name] !== undefined)
          throw new InvalidOptionError(
            name,
            'shapes how messages are rendered, and this ChatPrompt is rendered already: pass it to chatPrompt() instead',
          );
    }
    if (prompt.tools && options.logprobs)
      throw new InvalidOptionError(
        'logprobs',
        "is not available with tools (a call's tokens are not the answer's): run chatPrompt()'s ids through generate() for them",
      );
    const genOptions: GenerateOptions = {
      ...options,
      reusePrefix: options.reusePrefix ?? true,
      stopTokens: [...(options.stopTokens ?? []), ...prompt.stopTokens],
    };
    if (prompt.format === 'template') return this.completeTemplate(generate, prompt, genOptions, options);
    const decoder = this.tokenizer.streamDecoder();
    const ids = this.harmonyIds();
    const turn = new HarmonyTurn(
      prompt.ids,
      generate,
      (text) => this.tokenizer.encode(text, { bos: false }),
      ids,
      decoder,
      options.onText,
      genOptions.maxTokens ?? 256,
    );
    const force = prompt.tools?.force;
    const constrained = constraintOption(options) !== undefined;
    if (constrained && prompt.tools && !force) refuseToolsWithFormat();
    if (force) {
      // A forced call: its header is written for the model (the function chosen first by a grammar
      // over the names when several are allowed), then its arguments follow the function's schema.
      // The caller's stop strings are for an answer: they would cut the call's name or arguments.
      const forced = { ...genOptions, stop: undefined };
      turn.write('<|channel|>commentary to=functions.');
      let tool: ToolDefinition | undefined = force[0];
      if (force.length > 1) {
        // The name and the space after it: a name that begins another ("get", "get_weather") ends only there.
        const g = await turn.run({ ...forced, grammar: `root ::= (${force.map((t) => JSON.stringify(t.name)).join(' | ')}) " "` });
        tool = g.stopToken === undefined ? force.find((t) => `${t.name} ` === g.text) : undefined;
        if (tool) turn.write('<|constrain|>json<|message|>');
      } else turn.write(`${tool.name} <|constrain|>json<|message|>`);
      if (tool) {
        const g = await turn.run({ ...forced, jsonSchema: argumentsSchema(tool) });
        if (g.stopReason === 'eos' && g.stopToken === undefined) turn.close('<|call|>');
      }
    } else if (constrained) {
      // A response format: the model reasons on the analysis channel, then ie opens the final
      // channel and the answer follows the format (harmony's headers are special tokens, which a
      // grammar over text cannot allow, so they are written, not constrained).
      // The reasoning gets at most half the budget: cut there, it is closed and the answer follows.
      const { jsonSchema: _s, grammar: _g, json: _j, ...free } = genOptions;
      turn.write('<|channel|>analysis<|message|>');
      const end = ids['<|end|>'];
      const a = await turn.run({ ...free, maxTokens: Math.floor(turn.budget / 2), stopTokens: [...(genOptions.stopTokens ?? []), end] });
      const cut = a.stopReason === 'length' && turn.budget > 0;
      if (cut) turn.write('<|end|>');
      if ((a.stopToken === end || cut) && turn.budget > 0) {
        turn.write('<|start|>assistant<|channel|>final<|message|>');
        const f = await turn.run(genOptions);
        if (f.stopReason === 'eos' && f.stopToken === undefined) turn.close('<|return|>');
      }
    } else await turn.run(genOptions);
    return turn.completion(prompt.tools !== undefined);
  }

  /**
   * A turn in the model's chat template. With tools (Hermes style), the text streams up to the
   * first `<tool_call>` and the calls are read from the whole answer; a forced call is written as
   * `<tool_call>` and its JSON ({name, arguments}) follows the functions' schemas.
   */
  private async completeTemplate(
    generate: (ids: readonly number[], options: GenerateOptions) => Generation,
    prompt: ChatPrompt,
    genOptions: GenerateOptions,
    options: ChatOptions,
  ): Promise<ChatCompletion> {
    const force = prompt.tools?.force;
    if (prompt.tools && !force && constraintOption(options) !== undefined) refuseToolsWithFormat();
    const syntax = prompt.tools?.syntax === 'json' ? JSON_CALLS : HERMES_CALLS;
    const offered = new Set(prompt.tools?.names ?? []);
    if (force) {
      // The call's opening (Hermes: <tool_call>) written for the model, its JSON held to the functions'
      // schemas (the caller's stop strings, meant for an answer, left out). Nothing streams; a call
      // cut short (the token budget) is no call and no answer.
      const { prefix, schema } = syntax.forced;
      const open = prefix ? encodeChatPrompt(this.tokenizer, prefix, { specials: this.specialPieces(), bos: false }) : [];
      const g = generate([...prompt.ids, ...open], { ...genOptions, stop: undefined, jsonSchema: schema(force) });
      for await (const _ of g);
      const calls = g.stopReason === 'eos' ? syntax.parse(`${prefix}${g.text}`, offered).calls : [];
      return this.templateCompletion(g, '', calls);
    }
    const g = generate(prompt.ids, genOptions);
    // A template that thinks in <think> blocks: the block is the reasoning (analysis), the rest the
    // answer; unconstrained answers only (a constrained one is the format itself).
    const thinks = templateThinks(this.header.chat?.template ?? '') && constraintOption(options) === undefined;
    const split = thinks ? new ReasoningSplitter(promptOpensThinking(prompt.text)) : undefined;
    // The answer's text goes to onText up to its first <tool_call> when functions were offered.
    // What the filter let through: with calls, the answer is that (the text before them), as streamed.
    let shown = '';
    const calls = prompt.tools
      ? syntax.textFilter((text) => {
          shown += text;
          options.onText?.(text, 'final');
        })
      : undefined;
    const emit = (text: string, channel: string, piece?: Piece) => {
      if (channel === 'final' && calls) calls.push(text);
      else if (text || piece) options.onText?.(text, channel, piece);
    };
    const pass = (parts: Array<[string, string]>, piece?: Piece) => {
      for (const [k, [text, channel]] of parts.entries()) emit(text, channel, k === parts.length - 1 ? piece : undefined);
      // A token whose text is held back (part of a tag, an incomplete character) still reports its piece.
      if (!parts.length && piece) emit('', split?.channel ?? 'final', piece);
    };
    for await (const p of g) {
      const piece = options.logprobs && p.token >= 0 ? p : undefined;
      if (split) pass(split.push(p.text), piece);
      else if (p.text || piece) emit(p.text, 'final', piece);
    }
    if (split) pass(split.flush());
    const answer = split ? split.answer : g.text;
    const reasoning = split ? split.reasoning.trim() : '';
    if (calls) {
      const { calls: made } = syntax.parse(answer, offered);
      if (!made.length) calls.flush();
      return this.templateCompletion(g, made.length ? shown.trim() : answer, made, reasoning);
    }
    return this.templateCompletion(g, answer, [], reasoning);
  }

  private templateCompletion(g: Generation, final: string, toolCalls: ToolCall[], analysis = ''): ChatCompletion {
    const stopReason = g.stopReason as StopReason;
    return {
      final,
      analysis,
      messages: [...(analysis ? [{ channel: 'analysis', content: analysis }] : []), { channel: 'final', content: final }],
      ended: toolCalls.length ? 'call' : stopReason === 'eos' ? 'return' : undefined,
      toolCalls,
      tokens: g.tokens,
      stopReason,
      metrics: g.metrics as GenerationMetrics,
    };
  }

  /** The text of a piece of an embedded vocabulary (`<s>`), if it has one. */
  private pieceOf(id: number): string | undefined {
    const t = this.header.tokenizer;
    return 'pieces' in t ? t.pieces[id] || undefined : undefined;
  }

  /** Special tokens by text for vocabularies whose tokenizer does not match them in text (SentencePiece, llama2.c): control and user-defined pieces, BOS, EOS. */
  private specialPieces(): Map<string, number> {
    if (this.specials) return this.specials;
    const m = new Map<string, number>();
    const t = this.header.tokenizer;
    if ('types' in t)
      for (let i = 0; i < t.types.length; i++) if ((t.types[i] === 3 || t.types[i] === 4) && t.pieces[i]) m.set(t.pieces[i], i);
    const chat = this.header.chat;
    for (const [piece, id] of [
      [chat?.bos_token ?? this.pieceOf(this.config.bos_id), this.config.bos_id],
      [chat?.eos_token ?? this.pieceOf(this.config.eos_id), this.config.eos_id],
    ] as const)
      if (piece && !m.has(piece)) m.set(piece, id);
    this.specials = m;
    return m;
  }

  private harmonyIds(): Record<HarmonySpecial, number> & { '<|constrain|>'?: number } {
    this.harmony ??= this.lookUpHarmonyIds();
    return this.harmony;
  }

  /** The harmony tokens' ids (looked up once: every harmony turn renders and reads with them). */
  private lookUpHarmonyIds(): Record<HarmonySpecial, number> & { '<|constrain|>'?: number } {
    if (this.config.architecture !== 'gpt-oss')
      throw new IeRuntimeError(
        'IE_CHAT_UNSUPPORTED',
        `chat() writes the harmony format of gpt-oss models; this is a ${this.config.architecture} model, whose chat template ie cannot render yet: use generate() with a prompt in the model's own format`,
      );
    const entries = HARMONY_SPECIALS.map((s) => [s, this.tokenizer.tokenId?.(s)] as const);
    const missing = entries.filter(([, id]) => id === undefined).map(([s]) => s);
    if (missing.length)
      throw new IeRuntimeError(
        'IE_CHAT_UNSUPPORTED',
        `the model's vocabulary lacks harmony's special tokens ${missing.join(' ')}: it cannot chat in the harmony format (use generate() with token ids or text)`,
      );
    const constrain = this.tokenizer.tokenId?.('<|constrain|>');
    return {
      ...(Object.fromEntries(entries) as Record<HarmonySpecial, number>),
      ...(constrain !== undefined ? { '<|constrain|>': constrain } : {}),
    };
  }
}

/** Messages come from callers (HTTP bodies): each must be a role and a string content; calls and tool results well formed. */
function checkMessages(messages: readonly ChatMessage[]): void {
  if (!Array.isArray(messages) || messages.length === 0)
    throw new InvalidOptionError('messages', 'must be a non-empty array of {role, content}');
  messages.forEach((m, i) => {
    if (typeof m !== 'object' || m === null) throw new InvalidOptionError(`messages[${i}]`, 'must be an object {role, content}');
    if (typeof m.role !== 'string' || m.role.length === 0 || m.role.length > 64)
      throw new InvalidOptionError(`messages[${i}].role`, 'must be a non-empty string (system, user, assistant, ...)');
    if (typeof m.content !== 'string') throw new InvalidOptionError(`messages[${i}].content`, 'must be a string');
    if (m.toolCalls !== undefined) {
      if (m.role !== 'assistant' || !Array.isArray(m.toolCalls))
        throw new InvalidOptionError(`messages[${i}].toolCalls`, 'must be an array of {name, arguments}, on an assistant message');
      (m.toolCalls as ToolCall[]).forEach((c, j) => {
        if (typeof c !== 'object' || c === null || typeof c.name !== 'string' || !FUNCTION_NAME.test(c.name))
          throw new InvalidOptionError(`messages[${i}].toolCalls[${j}].name`, 'must be 1 to 64 letters, digits, _ or -');
        if (typeof c.arguments !== 'string')
          throw new InvalidOptionError(`messages[${i}].toolCalls[${j}].arguments`, 'must be JSON text (a string)');
      });
    }
    if (m.name !== undefined && (typeof m.name !== 'string' || !FUNCTION_NAME.test(m.name)))
      throw new InvalidOptionError(`messages[${i}].name`, 'must be 1 to 64 letters, digits, _ or -');
    if (m.toolCallId !== undefined && typeof m.toolCallId !== 'string')
      throw new InvalidOptionError(`messages[${i}].toolCallId`, 'must be a string');
    if (m.reasoning !== undefined && (typeof m.reasoning !== 'string' || m.role !== 'assistant'))
      throw new InvalidOptionError(`messages[${i}].reasoning`, 'must be a string, on an assistant message');
  });
}

/** A response format with functions the model may call: the constrained answer could never call one. */
function refuseToolsWithFormat(): never {
  throw new InvalidOptionError(
    'tools',
    'cannot be offered with jsonSchema, grammar or json (the answer would follow the format and never call): force a call with toolChoice, or leave tools out',
  );
}

/** The chat options that render() reads: they belong to chatPrompt() when chat() is given its ChatPrompt. */
const RENDER_OPTIONS = [
  'reasoningEffort',
  'currentDate',
  'knowledgeCutoff',
  'templateVariables',
  'tools',
  'toolChoice',
  'jsonSchemaName',
] as const satisfies readonly (keyof ChatOptions)[];

/** A ChatPrompt given in place of messages: the shape prompt() returns, in the model's own format. */
function checkChatPrompt(p: readonly ChatMessage[] | ChatPrompt, format: ChatPrompt['format']): ChatPrompt {
  if (typeof p !== 'object' || p === null)
    throw new InvalidOptionError('messages', 'must be a non-empty array of {role, content}, or the ChatPrompt chatPrompt() returned');
  const c = p as Partial<ChatPrompt>;
  if (c.format !== format)
    throw new InvalidOptionError(
      'prompt.format',
      `must be '${format}' for this model (pass the ChatPrompt its own chatPrompt() returned), got ${JSON.stringify(c.format)}`,
    );
  const ids = (v: unknown) => Array.isArray(v) && v.every((t) => Number.isSafeInteger(t) && t >= 0);
  if (!ids(c.ids) || (c.ids as number[]).length === 0) throw new InvalidOptionError('prompt.ids', 'must be a non-empty array of token ids');
  if (!ids(c.stopTokens)) throw new InvalidOptionError('prompt.stopTokens', 'must be an array of token ids');
  if (c.tools !== undefined) {
    const t = c.tools as Partial<PromptTools> | null;
    if (
      typeof t !== 'object' ||
      t === null ||
      (format === 'harmony') !== (t.syntax === 'harmony') ||
      !['harmony', 'hermes', 'json'].includes(t.syntax as string)
    )
      throw new InvalidOptionError('prompt.tools', 'must be the tools member chatPrompt() gave this prompt');
    if (t.force !== undefined) checkTools(t.force, 'required');
    if (!Array.isArray(t.names) || t.names.some((n) => typeof n !== 'string'))
      throw new InvalidOptionError('prompt.tools', 'must be the tools member chatPrompt() gave this prompt');
  }
  return c as ChatPrompt;
}

/** `currentDate` (YYYY-MM-DD) as a local date for a template's strftime_now and date_string. */
function parseDate(s: string): Date {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(s);
  const d = m ? new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3])) : undefined;
  if (!d || d.getMonth() !== Number(m?.[2]) - 1)
    throw new InvalidOptionError('currentDate', `must be a date YYYY-MM-DD, got ${JSON.stringify(s)}`);
  return d;
}
