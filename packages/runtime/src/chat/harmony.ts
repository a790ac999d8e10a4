/**
 * OpenAI's harmony chat format (gpt-oss): how a conversation is written for the model, and how its
 * answer is read back. A message is `<|start|>{role}<|message|>{content}<|end|>`; the assistant
 * writes on channels (`<|channel|>analysis` for its reasoning, `final` for the answer,
 * `commentary` for tool calls) and ends its turn with `<|return|>` (or `<|call|>` for a tool call).
 * The prompt ends with `<|start|>assistant`, where the model takes over.
 */

import type { Piece } from '../generation/types.js';
import { type ToolCall, type ToolDefinition, harmonyToolsSection } from './tools.js';

export type ReasoningEffort = 'low' | 'medium' | 'high';

export interface ChatMessage {
  /** `tool`: a function's result, answering an earlier assistant message's call. */
  role: 'system' | 'developer' | 'user' | 'assistant' | 'tool';
  content: string;
  /** An assistant message's calls (its content, if any, is what it said before them). */
  toolCalls?: ToolCall[];
  /**
   * An assistant message's reasoning (ChatCompletion.analysis): harmony writes it back before the
   * message's calls (the model reasons across a call and its result); chat templates get it as
   * `reasoning_content` (Qwen3's reads it).
   */
  reasoning?: string;
  /** A tool message's function (`get_weather`): harmony writes the result as that function's message. */
  name?: string;
  /** A tool message's call id (chat templates that print one). */
  toolCallId?: string;
}

export interface HarmonyOptions {
  reasoningEffort?: ReasoningEffort;
  /** "Current date: …" in the system message (YYYY-MM-DD); omitted when unset. */
  currentDate?: string;
  knowledgeCutoff?: string;
  /** Functions the model may call, declared in the developer message (see chat/tools.ts). */
  tools?: readonly ToolDefinition[];
  /** The answer's format, declared in the developer message's `# Response Formats` (the schema as JSON). */
  responseFormat?: { name: string; schema: object | boolean };
}

/** The special tokens harmony needs in the model's vocabulary. */
export const HARMONY_SPECIALS = ['<|start|>', '<|end|>', '<|message|>', '<|channel|>', '<|return|>', '<|call|>'] as const;
export type HarmonySpecial = (typeof HARMONY_SPECIALS)[number];

/**
 * The prompt for a conversation. A leading `system` message becomes the developer message's
 * instructions (harmony's system message is the model's own preamble: identity, dates, reasoning
 * effort, channels); earlier assistant turns are written on the final channel.
 */
export function renderHarmony(messages: readonly ChatMessage[], options: HarmonyOptions = {}): string {
  return renderHarmonyParts(messages, options)
    .map((p) => p.text)
    .join('');
}

/** A piece of the prompt: the format's own text (special tokens included) or a message's content. */
export interface HarmonyPart {
  text: string;
  /**
   * The caller's text: tokenized as ordinary text (Tokenizer.encodeOrdinary), never as special
   * tokens, as OpenAI's renderer does: a user typing "<|end|>" must not close the message and
   * write the developer's or the assistant's turn.
   */
  content: boolean;
}

/** renderHarmony's text in pieces, the messages' contents apart from the format around them. */
export function renderHarmonyParts(messages: readonly ChatMessage[], options: HarmonyOptions = {}): HarmonyPart[] {
  const effort = options.reasoningEffort ?? 'medium';
  const tools = options.tools ?? [];
  const system = [
    'You are ChatGPT, a large language model trained by OpenAI.',
    `Knowledge cutoff: ${options.knowledgeCutoff ?? '2024-06'}`,
    ...(options.currentDate ? [`Current date: ${options.currentDate}`] : []),
    '',
    `Reasoning: ${effort}`,
    '',
    '# Valid channels: analysis, commentary, final. Channel must be included for every message.',
    ...(tools.length ? ["Calls to these tools must go to the commentary channel: 'functions'."] : []),
  ].join('\n');
  const parts: HarmonyPart[] = [];
  const format = (text: string) => parts.push({ text, content: false });
  const content = (text: string) => {
    if (text) parts.push({ text, content: true });
  };
  format(`<|start|>system<|message|>${system}<|end|>`);
  const instructions = messages.filter((m) => m.role === 'system' || m.role === 'developer').map((m) => m.content);
  const format_ = options.responseFormat;
  if (instructions.length || tools.length || format_) {
    // One piece between the special tokens, as the tokenizer would cut the whole text.
    format('<|start|>developer<|message|>');
    const sections = instructions.length ? ['# Instructions', instructions.join('\n\n')] : [];
    if (tools.length) sections.push(harmonyToolsSection(tools));
    if (format_) sections.push(`# Response Formats\n\n## ${format_.name}\n\n${JSON.stringify(format_.schema)}`);
    content(sections.join('\n\n'));
    format('<|end|>');
  }
  for (const m of messages) {
    if (m.role === 'assistant' && m.toolCalls?.length) {
      // Its reasoning on analysis, what it said before calling (a preamble) on commentary, then each call to its function.
      if (m.reasoning) {
        format('<|start|>assistant<|channel|>analysis<|message|>');
        content(m.reasoning);
        format('<|end|>');
      }
      if (m.content) {
        format('<|start|>assistant<|channel|>commentary<|message|>');
        content(m.content);
        format('<|end|>');
      }
      for (const c of m.toolCalls) {
        format(`<|start|>assistant<|channel|>commentary to=${functionRecipient(c.name)} <|constrain|>json<|message|>`);
        content(c.arguments);
        format('<|call|>');
      }
      continue;
    }
    if (m.role === 'user') format('<|start|>user<|message|>');
    else if (m.role === 'assistant') format('<|start|>assistant<|channel|>final<|message|>');
    else if (m.role === 'tool') format(`<|start|>${functionRecipient(m.name ?? '')} to=assistant<|channel|>commentary<|message|>`);
    else continue;
    content(m.content);
    format('<|end|>');
  }
  format('<|start|>assistant');
  return parts;
}

/** A function's harmony address: `functions.{name}`. */
function functionRecipient(name: string): string {
  return name.startsWith('functions.') ? name : `functions.${name}`;
}

export interface HarmonyMessage {
  channel: string;
  /** `to=…` of a tool call's header, if any. */
  recipient?: string;
  content: string;
}

/**
 * Reads the assistant's tokens as they come: special tokens (by id) switch state, every other
 * token's text goes to the header or to the current message. `onText` streams content as it is
 * decoded, with its channel.
 */
export class HarmonyReader {
  readonly messages: HarmonyMessage[] = [];
  /** Set when the turn ended: `return` (an answer) or `call` (a tool call). */
  ended: 'return' | 'call' | undefined;
  // The prompt ends with `<|start|>assistant`: the model's first tokens are the rest of the role part.
  private state: 'header' | 'content' | 'role' = 'role';
  private header = '';
  /** `to=…` written in the role part (`<|start|>assistant to=functions.x<|channel|>…`). */
  private roleRecipient: string | undefined;
  private current: HarmonyMessage | undefined;
  private readonly byId: Map<number, HarmonySpecial | '<|constrain|>'>;

  /** `ids`: the harmony tokens, and `<|constrain|>` where the vocabulary has it (its text, which decoders skip, marks a call's argument format). */
  constructor(
    ids: Readonly<Record<HarmonySpecial, number>> & { readonly '<|constrain|>'?: number },
    private readonly decodeText: (token: number) => string,
    private readonly onText?: (text: string, channel: string, piece?: Piece) => void,
    /** What the decoder still holds (an incomplete character as U+FFFD): ends a message's text when it closes. */
    private readonly flushText?: () => string,
  ) {
    this.byId = new Map(Object.entries(ids).map(([k, v]) => [v, k as HarmonySpecial | '<|constrain|>']));
  }

  /**
   * `piece`: the model's piece for this token (with logprobs): passed to onText with its content,
   * even while a character is incomplete. `text`: the token's text as the generation released it
   * (stop strings cut off, held-back text let out with a later token; a special token's comes
   * before it), in place of this reader's own decoding; token -1 is text alone (a generation's
   * last, held-back text).
   */
  push(token: number, piece?: Piece, text?: string): void {
    const special = this.byId.get(token);
    if (special === undefined) {
      this.addText(text ?? (token >= 0 ? this.decodeText(token) : ''), piece);
      return;
    }
    if (text) this.addText(text);
    if (special !== '<|constrain|>') this.finish();
    switch (special) {
      case '<|start|>':
        this.close();
        this.state = 'role';
        break;
      case '<|channel|>':
        // After <|start|>, the header so far was the role ("assistant", maybe "to=functions.x"): the channel name follows.
        if (this.state === 'role') this.roleRecipient = recipientIn(this.header.trim().split(/\s+/));
        this.state = 'header';
        this.header = '';
        break;
      case '<|message|>': {
        // The header is "final", "analysis", "commentary to=functions.x <|constrain|>json"...; a
        // message without a channel (right after the role) counts as final.
        const words = this.state === 'role' ? [] : this.header.trim().split(/\s+/);
        const recipient = recipientIn(words) ?? (this.state === 'role' ? recipientIn(this.header.trim().split(/\s+/)) : this.roleRecipient);
        this.current = { channel: words[0] || 'final', content: '', ...(recipient ? { recipient } : {}) };
        this.messages.push(this.current);
        this.state = 'content';
        break;
      }
      case '<|constrain|>':
        // "to=functions.x<|constrain|>json": apart from the recipient, even when glued to it.
        if (this.state !== 'content') this.header += ' <|constrain|>';
        break;
      case '<|end|>':
        this.close();
        break;
      case '<|return|>':
      case '<|call|>':
        this.close();
        this.ended = special === '<|return|>' ? 'return' : 'call';
        break;
    }
  }

  private addText(text: string, piece?: Piece): void {
    if (this.state === 'content' && this.current) {
      this.current.content += text;
      if (text || piece) this.onText?.(text, this.current.channel, piece);
    } else this.header += text;
  }

  /** Ends the open message's text with what the decoder still holds (a message cut by the token budget). */
  finish(): void {
    if (this.state !== 'content' || !this.current || !this.flushText) return;
    const rest = this.flushText();
    if (!rest) return;
    this.current.content += rest;
    this.onText?.(rest, this.current.channel);
  }

  /** The answer: the final channel's text (the last such message). */
  get final(): string {
    return [...this.messages].reverse().find((m) => m.channel === 'final')?.content ?? '';
  }

  /** The reasoning: every analysis message, in order. */
  get analysis(): string {
    return this.messages
      .filter((m) => m.channel === 'analysis')
      .map((m) => m.content)
      .join('\n');
  }

  /** The function calls of the turn: its messages to `functions.*`, arguments as written. */
  get toolCalls(): ToolCall[] {
    return this.messages
      .filter((m) => m.recipient?.startsWith('functions.'))
      .map((m) => ({ name: (m.recipient as string).slice('functions.'.length), arguments: m.content.trim() }));
  }

  private close(): void {
    this.current = undefined;
    this.state = 'header';
    this.header = '';
    this.roleRecipient = undefined;
  }
}

/** The recipient among a header's words (`to=functions.x`, maybe with `<|constrain|>json` glued on). */
function recipientIn(words: readonly string[]): string | undefined {
  const w = words.find((x) => x.startsWith('to='));
  return w ? w.slice(3).split('<|')[0] || undefined : undefined;
}
