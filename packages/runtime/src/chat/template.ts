/**
 * A model's own chat template (model.ie.json `chat`, from tokenizer_config.json or GGUF
 * `tokenizer.chat_template`) rendered with @huggingface/jinja, the Jinja implementation
 * transformers.js uses: the variables transformers' apply_chat_template passes (`messages`,
 * `add_generation_prompt`, `bos_token`, `eos_token`) and the helpers templates call
 * (`raise_exception`, `strftime_now`, `range`, and `date_string` for Llama 3.1's). The rendered text
 * is tokenized with the vocabulary's special tokens recognised (`<s>`, `</s>`, `<|im_end|>` become
 * their ids, as llama.cpp's parse_special does), with no second BOS when the text starts with one.
 */
import { Environment, Interpreter, Template } from '@huggingface/jinja';
import { IeRuntimeError } from '../errors.js';
import type { Tokenizer } from '../tokenizer/types.js';
import type { ChatMessage } from './harmony.js';
import { pushAll } from '../arrays.js';

/** Why a template failed: it does not parse or run (`IE_CHAT_TEMPLATE_INVALID`), or it refused the conversation (`IE_CHAT_TEMPLATE_REFUSED`). */
export class ChatTemplateError extends IeRuntimeError {
  override readonly name = 'ChatTemplateError';
  constructor(code: 'IE_CHAT_TEMPLATE_INVALID' | 'IE_CHAT_TEMPLATE_REFUSED', message: string, cause?: unknown) {
    super(code, message, cause === undefined ? undefined : { cause });
  }
}

export interface RenderOptions {
  /** End with the assistant's header, where the model takes over (transformers' add_generation_prompt). Default true. */
  addGenerationPrompt?: boolean;
  bosToken?: string;
  eosToken?: string;
  /** The time `strftime_now` and `date_string` tell. Default: now. */
  now?: Date;
  /** More variables for the template (a template's own options, such as `enable_thinking`). */
  variables?: Readonly<Record<string, unknown>>;
  /** The `tools` variable (Hugging Face's shape: [{type: 'function', function: {name, description, parameters}}]); unset when none. */
  tools?: readonly unknown[];
}

/** The largest `range()` a template may build: templates loop over messages, not millions of numbers. */
const MAX_RANGE = 100_000;

/**
 * The evaluation steps (expressions, statements, loop iterations) one render may take: this many,
 * plus STEPS_PER_ITEM for each message and tool. The templates in test/fixtures/chat-templates
 * take 21-46 steps a message (Llama 2's 4,570 for 100 messages); a template of nested loops or a
 * recursive macro from an untrusted model file stops within a second or two (a loop iteration
 * costs the library up to 15 microseconds) instead of hanging its caller.
 */
const MAX_STEPS = 100_000;
const STEPS_PER_ITEM = 1_000;

/**
 * The string characters and list items (and mapping entries) all the values one render makes may
 * add up to: this many, plus VALUE_UNITS_PER_INPUT_CHAR for each character of the messages and
 * tools. A step is one value however large, so a template doubling a list (`{% set x = x + x %}`)
 * within the step cap took 4.5 GB and the process with it; the templates in
 * test/fixtures/chat-templates make a few times their input.
 */
const MAX_VALUE_UNITS = 1 << 25;
const VALUE_UNITS_PER_INPUT_CHAR = 16;

/**
 * The interpreter with every evaluation counted against MAX_STEPS: each expression and statement
 * (`evaluate`) and each block run (`evaluateBlock`, which a loop calls once an iteration even when
 * its body is empty, without going through `evaluate`). The library types `evaluateBlock` private,
 * so it is wrapped on the instance; template.test.ts checks that a loop of empty loops still stops.
 */
class BoundedInterpreter extends Interpreter {
  private steps = 0;
  private units = 0;
  constructor(
    env: Environment,
    private readonly budget: number,
    private readonly unitBudget: number,
  ) {
    super(env);
    const self = this as unknown as { evaluateBlock?: (...args: unknown[]) => unknown };
    const block = self.evaluateBlock;
    if (typeof block === 'function')
      self.evaluateBlock = (...args: unknown[]) => {
        this.step();
        return block.apply(this, args);
      };
  }
  override evaluate(...args: Parameters<Interpreter['evaluate']>): ReturnType<Interpreter['evaluate']> {
    this.step();
    const v = super.evaluate(...args);
    // Charged by size: what a step made (or handed on) counts its characters or entries.
    const x = (v as { value?: unknown }).value;
    const size = typeof x === 'string' || Array.isArray(x) ? x.length : x instanceof Map ? x.size : 0;
    if ((this.units += size) > this.unitBudget)
      throw new Error(`rendering makes values of more than ${this.unitBudget} characters and items in all, the template's cap`);
    return v;
  }
  private step(): void {
    if (++this.steps > this.budget) throw new Error(`rendering takes more than ${this.budget} evaluation steps, the template's cap`);
  }
}

const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];
const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];

/**
 * Python's strftime for the directives chat templates use, in English whatever the machine's locale
 * (the prompt must not depend on where it runs): %Y %y %m %d %e %b %B %a %A %H %I %M %S %p %j %%.
 */
export function strftime(date: Date, format: string): string {
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  const start = new Date(date.getFullYear(), 0, 1);
  return format.replace(/%[YymdebBaAHIMSpj%]/g, (t) => {
    switch (t) {
      case '%Y':
        return String(date.getFullYear());
      case '%y':
        return pad(date.getFullYear() % 100);
      case '%m':
        return pad(date.getMonth() + 1);
      case '%d':
        return pad(date.getDate());
      case '%e':
        return String(date.getDate()).padStart(2, ' ');
      case '%b':
        return MONTHS[date.getMonth()].slice(0, 3);
      case '%B':
        return MONTHS[date.getMonth()];
      case '%a':
        return DAYS[date.getDay()].slice(0, 3);
      case '%A':
        return DAYS[date.getDay()];
      case '%H':
        return pad(date.getHours());
      case '%I':
        return pad(((date.getHours() + 11) % 12) + 1);
      case '%M':
        return pad(date.getMinutes());
      case '%S':
        return pad(date.getSeconds());
      case '%p':
        return date.getHours() < 12 ? 'AM' : 'PM';
      case '%j':
        return pad(Math.floor((date.getTime() - start.getTime()) / 86_400_000) + 1, 3);
      default:
        return '%';
    }
  });
}

/** Python's range(), bounded. */
function range(start: number, stop?: number, step = 1): number[] {
  const [a, b] = stop === undefined ? [0, start] : [start, stop];
  if (![a, b, step].every(Number.isInteger)) throw new Error('range() takes integers');
  if (step === 0) throw new Error('range() step must not be zero');
  const n = Math.max(0, Math.ceil((b - a) / step));
  if (n > MAX_RANGE) throw new Error(`range() of ${n} numbers exceeds the template cap of ${MAX_RANGE}`);
  return Array.from({ length: n }, (_, i) => a + i * step);
}

/** A one-line excerpt of a message from a template or the library: control characters dropped, at most 200 characters. */
function oneLine(raw: string): string {
  let line = '';
  for (const ch of raw) {
    const c = ch.codePointAt(0) as number;
    line += c < 0x20 || (c >= 0x7f && c < 0xa0) ? ' ' : ch;
  }
  line = line.replace(/ {2,}/g, ' ').trim();
  return line.length > 200 ? `${line.slice(0, 199)}…` : line || 'no message';
}

/** raise_exception's error, told apart from the template's own failures. */
class Raised extends Error {}

const WHAT_TO_DO =
  "pass a prompt written in the model's own format to generate() instead, or re-convert the model from a directory whose tokenizer_config.json has a working chat_template";

/** A parsed chat template, rendered once per conversation. */
export class ChatTemplate {
  private readonly parsed: Template['parsed'];

  /** Parses `source`; a template that does not parse is IE_CHAT_TEMPLATE_INVALID. `origin` names it in errors. */
  constructor(
    readonly source: string,
    readonly origin = "the model's chat template",
  ) {
    try {
      this.parsed = new Template(source).parsed;
    } catch (e) {
      throw new ChatTemplateError(
        'IE_CHAT_TEMPLATE_INVALID',
        `${origin} does not parse as Jinja (${oneLine(e instanceof Error ? e.message : String(e))}): ${WHAT_TO_DO}`,
        e,
      );
    }
  }

  /** The prompt text for `messages`. */
  render(messages: readonly ChatMessage[], options: RenderOptions = {}): string {
    const now = options.now ?? new Date();
    const env = new Environment();
    const vars: Record<string, unknown> = {
      // What the library's own Template.render declares, with raise_exception and strftime_now of ours.
      true: true,
      false: false,
      none: null,
      True: true,
      False: false,
      None: null,
      range,
      raise_exception: (message: unknown) => {
        throw new Raised(String(message));
      },
      strftime_now: (format: unknown) => strftime(now, String(format)),
      // Llama 3.1's template prints it when defined (its own default is a fixed 2024 date).
      date_string: strftime(now, '%d %b %Y'),
      ...(options.variables ?? {}),
      // Role, content and the tool members in Hugging Face's names; nothing else reaches the template.
      messages: messages.map(templateMessage),
      ...(options.tools ? { tools: options.tools } : {}),
      add_generation_prompt: options.addGenerationPrompt ?? true,
      bos_token: options.bosToken ?? '',
      eos_token: options.eosToken ?? '',
    };
    for (const [k, v] of Object.entries(vars)) env.set(k, v);
    let out: unknown;
    try {
      const items = messages.length + (options.tools?.length ?? 0);
      const inputChars = JSON.stringify(vars.messages).length + (options.tools ? JSON.stringify(options.tools).length : 0);
      out = new BoundedInterpreter(env, MAX_STEPS + STEPS_PER_ITEM * items, MAX_VALUE_UNITS + VALUE_UNITS_PER_INPUT_CHAR * inputChars).run(
        this.parsed,
      ).value;
    } catch (e) {
      if (e instanceof Raised)
        throw new ChatTemplateError(
          'IE_CHAT_TEMPLATE_REFUSED',
          `${this.origin} refused the conversation: "${oneLine(e.message)}"; change the messages (roles, order, system message) to what the template accepts`,
          e,
        );
      throw new ChatTemplateError(
        'IE_CHAT_TEMPLATE_INVALID',
        `${this.origin} fails to render (${oneLine(e instanceof Error ? e.message : String(e))}): ${WHAT_TO_DO}`,
        e,
      );
    }
    if (typeof out !== 'string') throw new ChatTemplateError('IE_CHAT_TEMPLATE_INVALID', `${this.origin} renders no text: ${WHAT_TO_DO}`);
    return out;
  }
}

/**
 * A message as Hugging Face templates read it: `tool_calls` ({type, function: {name, arguments}},
 * the arguments as an object where they parse as one, as transformers passes them),
 * `reasoning_content`, `name` and `tool_call_id` where set.
 */
function templateMessage(m: ChatMessage): Record<string, unknown> {
  const out: Record<string, unknown> = { role: m.role, content: m.content };
  if (m.toolCalls?.length)
    out.tool_calls = m.toolCalls.map((c) => ({
      ...(c.id !== undefined ? { id: c.id } : {}),
      type: 'function',
      function: { name: c.name, arguments: parsedArguments(c.arguments) },
    }));
  if (m.reasoning !== undefined) out.reasoning_content = m.reasoning;
  if (m.name !== undefined) out.name = m.name;
  if (m.toolCallId !== undefined) out.tool_call_id = m.toolCallId;
  return out;
}

function parsedArguments(text: string): unknown {
  try {
    const v = JSON.parse(text);
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? v : text;
  } catch {
    return text;
  }
}

/**
 * Token ids of a rendered chat prompt. `specials` maps the text of special tokens to their ids
 * (control and user-defined pieces, BOS and EOS) for vocabularies whose tokenizer does not match
 * them itself (SentencePiece and llama2.c; a tokenizer.json matches its added tokens on its own):
 * the text is split at them, as llama.cpp's parse_special does, and each piece between them is
 * encoded alone. BOS is prepended where the vocabulary's own rule adds one, unless the text
 * already starts with `bosToken` (templates that write `{{ bos_token }}` themselves).
 */
export function encodeChatPrompt(
  tokenizer: Tokenizer,
  text: string,
  options: { bosToken?: string; specials?: ReadonlyMap<string, number>; bos?: boolean } = {},
): number[] {
  const own = options.bosToken !== undefined && options.bosToken !== '' && text.startsWith(options.bosToken);
  // The vocabulary's rule: what encode() does with no bos option (Llama, SentencePiece: BOS; Qwen2: none); `bos: false` for text that continues a prompt.
  const rule = options.bos !== false && tokenizer.encode('', {})[0] === tokenizer.bosId;
  const out: number[] = rule && !own ? [tokenizer.bosId] : [];
  const specials = tokenizer.kind === 'hf' ? undefined : options.specials;
  if (!specials || specials.size === 0) {
    pushAll(out, tokenizer.encode(text, { bos: false }));
    return out;
  }
  // By first character, longest first: "<|im_end|>" is not cut at a shorter special that starts it.
  const byFirst = new Map<string, string[]>();
  for (const k of [...specials.keys()].sort((a, b) => b.length - a.length)) {
    if (k.length === 0) continue;
    const list = byFirst.get(k[0]) ?? [];
    list.push(k);
    byFirst.set(k[0], list);
  }
  let from = 0;
  for (let i = 0; i < text.length; ) {
    const hit = byFirst.get(text[i])?.find((k) => text.startsWith(k, i));
    if (hit === undefined) {
      i++;
      continue;
    }
    if (i > from) pushAll(out, tokenizer.encode(text.slice(from, i), { bos: false }));
    out.push(specials.get(hit) as number);
    i += hit.length;
    from = i;
  }
  if (from < text.length) pushAll(out, tokenizer.encode(text.slice(from), { bos: false }));
  return out;
}
