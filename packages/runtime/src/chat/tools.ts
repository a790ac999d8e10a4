/**
 * Tool (function) calling in chat: the functions a caller offers, how each chat format writes them
 * for the model, and how the model's calls are read back. Harmony (gpt-oss) declares them as a
 * TypeScript namespace in the developer message and the model calls one with a commentary message
 * to `functions.{name}`; a chat template receives them as its `tools` variable, and templates in the
 * Hermes style (Qwen2.5, Qwen3, Hermes) have the model write `<tool_call>{"name", "arguments"}</tool_call>`.
 */
import { InvalidOptionError } from '../errors.js';
import { heldTail } from './reasoning.js';
import { StructuredOutputError } from '../structured/errors.js';
import { compileGrammar } from '../structured/grammar.js';
import { schemaToGrammar } from '../structured/schema.js';

/** A function the model may call (OpenAI's `tools[].function`). */
export interface ToolDefinition {
  /** 1 to 64 letters, digits, `_` or `-`. */
  name: string;
  description?: string;
  /** The arguments' JSON schema (an object schema); none: the function takes no arguments. */
  parameters?: Record<string, unknown>;
}

/** A call the model made, or one an earlier assistant message made (its arguments as JSON text). */
export interface ToolCall {
  name: string;
  arguments: string;
  /** The caller's id for an earlier call (a chat template may print it); ie gives none. */
  id?: string;
}

/**
 * `auto`: the model calls a function or answers (the default with tools); `none`: the functions are
 * not offered; `required`: the model must call one; `{ name }`: it must call that one.
 */
export type ToolChoice = 'auto' | 'none' | 'required' | { name: string };

/** How a prompt's tools are read back, and the call a `required` or named choice forces. */
export interface PromptTools {
  /**
   * `harmony`: commentary messages to functions.*; `hermes`: `<tool_call>` JSON blocks in the text
   * (Qwen2.5, Qwen3, Hermes); `json`: the answer a JSON object `{"name", "parameters"}` (Llama 3.1 to
   * 3.3, optionally after `<|python_tag|>`).
   */
  syntax: 'harmony' | 'hermes' | 'json';
  /** The functions offered (a call to another is not read as one where the syntax cannot tell calls from other JSON). */
  names: string[];
  /** Set for `required` / a named choice: the model calls one of these (one: that one). */
  force?: ToolDefinition[];
}

/** A function's (and a response format's) name, as OpenAI's API takes them. */
export const FUNCTION_NAME = /^[A-Za-z0-9_-]{1,64}$/;

/** How deep a function's parameters schema may nest (objects and arrays): as deep as a structured-output schema may. */
const MAX_PARAMETERS_DEPTH = 128;

/** The nesting depth of a JSON value's objects and arrays, found without recursion (a hostile value cannot overflow the stack here). */
function nestingDepth(value: unknown): number {
  let max = 0;
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length) {
    const [v, d] = stack.pop() as [unknown, number];
    if (typeof v !== 'object' || v === null) continue;
    if (d > max) max = d;
    if (max > MAX_PARAMETERS_DEPTH) return max;
    for (const x of Array.isArray(v) ? v : Object.values(v)) stack.push([x, d + 1]);
  }
  return max;
}

/** The caller's tools and choice, checked (they come from HTTP bodies): the functions offered, and what they force. */
export function checkTools(tools: unknown, choice: unknown): { tools: ToolDefinition[]; choice: ToolChoice } {
  if (!Array.isArray(tools)) throw new InvalidOptionError('tools', 'must be an array of {name, description?, parameters?}');
  const seen = new Set<string>();
  tools.forEach((t, i) => {
    if (typeof t !== 'object' || t === null || Array.isArray(t))
      throw new InvalidOptionError(`tools[${i}]`, 'must be an object {name, description?, parameters?}');
    const d = t as Record<string, unknown>;
    if (typeof d.name !== 'string' || !FUNCTION_NAME.test(d.name))
      throw new InvalidOptionError(`tools[${i}].name`, `must be 1 to 64 letters, digits, _ or -, got ${JSON.stringify(d.name)}`);
    if (seen.has(d.name)) throw new InvalidOptionError(`tools[${i}].name`, `names ${JSON.stringify(d.name)} twice: each function once`);
    seen.add(d.name);
    if (d.description !== undefined && typeof d.description !== 'string')
      throw new InvalidOptionError(`tools[${i}].description`, 'must be a string');
    if (d.parameters !== undefined && (typeof d.parameters !== 'object' || d.parameters === null || Array.isArray(d.parameters)))
      throw new InvalidOptionError(`tools[${i}].parameters`, 'must be a JSON schema object');
    // Rendered recursively (harmony's TypeScript, a template's tojson): bounded before it is.
    if (d.parameters !== undefined && nestingDepth(d.parameters) > MAX_PARAMETERS_DEPTH)
      throw new InvalidOptionError(`tools[${i}].parameters`, `nests deeper than ${MAX_PARAMETERS_DEPTH} levels`);
  });
  const c = choice ?? 'auto';
  if (c === 'auto' || c === 'none' || c === 'required') {
    if (c === 'required' && tools.length === 0) throw new InvalidOptionError('toolChoice', "is 'required' but no tools are given");
    return { tools: tools as ToolDefinition[], choice: c };
  }
  const name = typeof c === 'object' && c !== null ? (c as { name?: unknown }).name : undefined;
  if (typeof name !== 'string')
    throw new InvalidOptionError('toolChoice', `must be 'auto', 'none', 'required' or {name}, got ${JSON.stringify(c)}`);
  if (!seen.has(name)) throw new InvalidOptionError('toolChoice.name', `${JSON.stringify(name)} is not one of the tools given`);
  return { tools: tools as ToolDefinition[], choice: { name } };
}

/** The functions a choice forces the model to call among (undefined: it may answer instead). */
export function forcedTools(tools: readonly ToolDefinition[], choice: ToolChoice): ToolDefinition[] | undefined {
  if (choice === 'required') return [...tools];
  if (typeof choice === 'object') return tools.filter((t) => t.name === choice.name);
  return undefined;
}

/**
 * Checks that a forced call's arguments can be held to each function's schema (compiled now, so an
 * unsupported keyword is refused when the request is made, naming the function, not mid-turn).
 */
export function checkForcedSchemas(tools: readonly ToolDefinition[], force: readonly ToolDefinition[]): void {
  for (const t of force)
    try {
      compileGrammar(schemaToGrammar(argumentsSchema(t)));
    } catch (e) {
      if (!(e instanceof StructuredOutputError)) throw e;
      throw new InvalidOptionError(
        `tools[${tools.indexOf(t)}].parameters`,
        `cannot hold a forced call's arguments to ${t.name}'s schema: ${e.message} [${e.code}] (see docs/structured-output.md; toolChoice 'auto' takes any schema)`,
      );
    }
}

/** A function's arguments schema for a forced call: its parameters, or an empty object when it takes none. */
export function argumentsSchema(tool: ToolDefinition): Record<string, unknown> {
  const p = tool.parameters;
  if (p === undefined) return { type: 'object', properties: {}, additionalProperties: false };
  // A schema with no type (`{}`, as clients send for a function without arguments) still means an object.
  return 'type' in p || '$ref' in p || 'anyOf' in p || 'oneOf' in p ? p : { type: 'object', ...p };
}

/** Rust's str::lines(): no last empty line, `\r\n` as `\n`. */
function lines(s: string): string[] {
  if (s === '') return [];
  const out = s.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
  if (s.endsWith('\n')) out.pop();
  return out;
}

/**
 * The developer message's tools section for `tools`, as OpenAI's harmony renderer writes it:
 * `# Tools`, `## functions`, and a `namespace functions` of one TypeScript type per function.
 */
export function harmonyToolsSection(tools: readonly ToolDefinition[]): string {
  const body = ['## functions\n', 'namespace functions {\n'];
  for (const t of tools) {
    for (const line of lines(t.description ?? '')) body.push(`// ${line}`);
    body.push(t.parameters ? `type ${t.name} = (_: ${schemaToTypescript(t.parameters, '')}) => any;\n` : `type ${t.name} = () => any;\n`);
  }
  body.push('} // namespace functions');
  return ['# Tools', body.join('\n')].join('\n\n');
}

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A `default` as a trailing comment: strings quoted unless the schema is an enum, others as JSON. */
function defaultComment(s: Json): string {
  const d = s.default;
  if (typeof d === 'string') return Array.isArray(s.enum) && s.enum.length > 0 ? `default: ${d}` : `default: "${d}"`;
  return `default: ${JSON.stringify(d)}`;
}

function withNull(ts: string, s: Json): string {
  return s.nullable === true && !ts.includes('null') ? `${ts} | null` : ts;
}

/** The variants of a oneOf, one ` | ` line each (indented under a property, or inline). */
function oneOfVariants(variants: unknown[], indent: string, skipFirstDescription: boolean, propertyDescription?: string): string[] {
  return variants.map((v, i) => {
    const s = isObject(v) ? v : {};
    let out = withNull(schemaToTypescript(s, `${indent}   `), s);
    const trailing: string[] = [];
    if (!(i === 0 && skipFirstDescription) && typeof s.description === 'string' && s.description !== propertyDescription)
      trailing.push(s.description);
    if ('default' in s) trailing.push(defaultComment(s));
    if (trailing.length) out += ` // ${trailing.join(' ')}`;
    return out;
  });
}

/**
 * A JSON schema as the TypeScript-like type harmony declares a function's parameters with (the
 * rules of OpenAI's renderer: descriptions, titles, examples and defaults as comments, `?` for
 * optional properties, enums as unions of literals, oneOf as ` | ` lines).
 */
export function schemaToTypescript(schema: unknown, indent: string): string {
  const s = isObject(schema) ? schema : {};
  if (Array.isArray(s.oneOf)) {
    // Each variant on its own line, a description or default after it.
    const descriptions = oneOfVariants(s.oneOf, indent, false);
    return descriptions.map((d) => `\n${indent} | ${d}`).join('');
  }
  if (Array.isArray(s.type)) {
    const types = s.type.filter((t): t is string => typeof t === 'string').map((t) => (t === 'integer' ? 'number' : t));
    if (types.length) return types.join(' | ');
  }
  switch (s.type) {
    case 'object': {
      let out = typeof s.description === 'string' ? `${indent}// ${s.description}\n` : '';
      out += '{\n';
      const required = new Set(Array.isArray(s.required) ? s.required.filter((r) => typeof r === 'string') : []);
      for (const [key, raw] of Object.entries(isObject(s.properties) ? s.properties : {})) {
        const v = isObject(raw) ? raw : {};
        const optional = required.has(key) ? '' : '?';
        if (typeof v.title === 'string') out += `${indent}// ${v.title}\n${indent}//\n`;
        if (!Array.isArray(v.oneOf) && typeof v.description === 'string') out += `${indent}// ${v.description}\n`;
        if (Array.isArray(v.examples) && v.examples.length) {
          out += `${indent}// Examples:\n`;
          for (const ex of v.examples) if (typeof ex === 'string') out += `${indent}// - "${ex}"\n`;
        }
        if (Array.isArray(v.oneOf)) {
          const desc = typeof v.description === 'string' ? v.description : undefined;
          const first = v.oneOf[0];
          // The property's description above it, unless its first variant says the same.
          const above = desc !== undefined && !(isObject(first) && first.description === desc);
          if (above) out += `${indent}// ${desc}\n`;
          if ('default' in v) out += `${indent}// ${defaultComment(v)}\n`;
          out += `${indent}${key}${optional}:\n`;
          for (const line of oneOfVariants(v.oneOf, indent, above, desc)) out += `${indent} | ${line}\n`;
          out += `${indent},\n`;
          continue;
        }
        out += `${indent}${key}${optional}: ${withNull(schemaToTypescript(v, `${indent}    `), v)},`;
        if ('default' in v) out += ` // ${defaultComment(v)}`;
        out += '\n';
      }
      return `${out}${indent}}`;
    }
    case 'string': {
      const literals = Array.isArray(s.enum) ? s.enum.filter((e): e is string => typeof e === 'string').map((e) => `"${e}"`) : [];
      return literals.length ? literals.join(' | ') : 'string';
    }
    case 'number':
    case 'integer':
      return 'number';
    case 'boolean':
      return 'boolean';
    case 'array':
      return 'items' in s ? `${schemaToTypescript(s.items, indent)}[]` : 'Array<any>';
    default:
      return 'any';
  }
}

const OPEN = '<tool_call>';
const CLOSE = '</tool_call>';

/**
 * The calls in a Hermes-style answer: each `<tool_call>{"name": …, "arguments": {…}}</tool_call>`
 * block whose JSON names a function, its arguments as JSON text; `content` is the text outside the
 * blocks that were read (a block that does not parse stays in it).
 */
export function parseHermesCalls(text: string): { content: string; calls: ToolCall[] } {
  const calls: ToolCall[] = [];
  let content = '';
  let from = 0;
  for (;;) {
    const open = text.indexOf(OPEN, from);
    if (open < 0) break;
    const close = text.indexOf(CLOSE, open + OPEN.length);
    // An unclosed last block (the answer cut at </tool_call>, a stop string or the end) is read to the end.
    const end = close < 0 ? text.length : close;
    const call = hermesCall(text.slice(open + OPEN.length, end));
    if (!call) break;
    calls.push(call);
    content += text.slice(from, open);
    from = close < 0 ? text.length : close + CLOSE.length;
  }
  content += text.slice(from);
  return { content: content.trim(), calls };
}

function hermesCall(json: string): ToolCall | undefined {
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch {
    return undefined;
  }
  if (!isObject(v) || typeof v.name !== 'string') return undefined;
  const args = v.arguments ?? v.parameters ?? {};
  return { name: v.name, arguments: typeof args === 'string' ? args : JSON.stringify(args) };
}

/**
 * Streams a Hermes-style answer's text up to its first `<tool_call>`: text that could be the start
 * of one is held back until it is not, and what follows one is held (the calls are read from the
 * whole text at the end; flush() passes it on when they were not calls after all).
 */
export class HermesTextFilter implements CallTextFilter {
  private held = '';
  private inCall = false;

  constructor(private readonly emit: (text: string) => void) {}

  push(text: string): void {
    if (!text) return;
    if (this.inCall) {
      this.held += text;
      return;
    }
    const t = this.held + text;
    const at = t.indexOf(OPEN);
    if (at >= 0) {
      this.inCall = true;
      this.held = t.slice(at);
      if (at > 0) this.emit(t.slice(0, at));
      return;
    }
    const keep = heldTail(t, OPEN);
    this.held = t.slice(t.length - keep);
    if (t.length > keep) this.emit(t.slice(0, t.length - keep));
  }

  /** The text held back, when the answer had no calls after all (a block that did not parse is text). */
  flush(): void {
    if (this.held) this.emit(this.held);
    this.held = '';
  }
}

/**
 * The tool-call syntax a chat template writes, if ie reads it: `hermes` where it declares
 * `<tool_call>`, `json` where it writes a call's `"parameters"` (Llama 3.1's); either must read `tools`.
 */
export function templateCallSyntax(source: string): 'hermes' | 'json' | undefined {
  if (!/\btools\b/.test(source)) return undefined;
  if (source.includes(OPEN)) return 'hermes';
  if (source.includes('"parameters"')) return 'json';
  return undefined;
}

/** A streaming text filter: push() the answer's text as it comes, flush() when the answer had no calls. */
export interface CallTextFilter {
  push(text: string): void;
  flush(): void;
}

/** How a templated model's calls are written, read, streamed around and forced. */
export interface TemplateCallSyntax {
  /** The calls in a whole answer (to the functions `offered`, where the syntax needs telling calls from other JSON), and the rest of its text. */
  parse(text: string, offered?: ReadonlySet<string>): { content: string; calls: ToolCall[] };
  /** A filter that passes on the answer's text that is not a call. */
  textFilter(emit: (text: string) => void): CallTextFilter;
  /** What a forced call's answer starts with (written for the model), and its JSON's schema. */
  forced: { prefix: string; schema(force: readonly ToolDefinition[]): Record<string, unknown> };
}

/** A forced call's JSON schema: {name: one of the forced functions, [argsKey]: its schema}. */
function callSchema(force: readonly ToolDefinition[], argsKey: 'arguments' | 'parameters'): Record<string, unknown> {
  const one = (t: ToolDefinition) => ({
    type: 'object',
    properties: { name: { const: t.name }, [argsKey]: argumentsSchema(t) },
    required: ['name', argsKey],
    additionalProperties: false,
  });
  return force.length === 1 ? one(force[0]) : { anyOf: force.map(one) };
}

export const HERMES_CALLS: TemplateCallSyntax = {
  parse: parseHermesCalls,
  textFilter: (emit) => new HermesTextFilter(emit),
  forced: { prefix: `${OPEN}\n`, schema: (force) => callSchema(force, 'arguments') },
};

const PYTHON_TAG = '<|python_tag|>';

/** The end of the JSON value that starts at `from` (an object or array, strings skipped), or -1. */
function jsonValueEnd(text: string, from: number): number {
  let depth = 0;
  let inString = false;
  for (let i = from; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') {
      depth--;
      if (depth === 0) return i + 1;
    }
  }
  return -1;
}

/**
 * The calls in a Llama 3-style answer: the whole answer (after an optional `<|python_tag|>`) a JSON
 * object `{"name", "parameters"}` (or `"arguments"`) naming one of `offered`, or several separated
 * by `;`. Anything else (a JSON object that is not such a call included) is content, with no calls.
 */
export function parseJsonCalls(text: string, offered?: ReadonlySet<string>): { content: string; calls: ToolCall[] } {
  const none = { content: text.trim(), calls: [] };
  let body = text.trim();
  if (body.startsWith(PYTHON_TAG)) body = body.slice(PYTHON_TAG.length).trim();
  const calls: ToolCall[] = [];
  for (let at = 0; at < body.length; ) {
    if (body[at] !== '{') return none;
    const end = jsonValueEnd(body, at);
    if (end < 0) return none;
    let v: unknown;
    try {
      v = JSON.parse(body.slice(at, end));
    } catch {
      return none;
    }
    if (!isObject(v) || typeof v.name !== 'string' || (offered && !offered.has(v.name))) return none;
    const args = 'parameters' in v ? v.parameters : 'arguments' in v ? v.arguments : undefined;
    if (args === undefined) return none;
    calls.push({ name: v.name, arguments: typeof args === 'string' ? args : JSON.stringify(args) });
    at = end;
    while (at < body.length && /[\s;]/.test(body[at])) at++;
  }
  return calls.length ? { content: '', calls } : none;
}

/**
 * Streams a Llama 3-style answer: text that begins like a call (`{` or `<|python_tag|>` first) is
 * held back until the answer ends (flush() passes it on when it was not a call); any other answer
 * streams as it comes.
 */
class JsonCallTextFilter implements CallTextFilter {
  private held = '';
  private state: 'start' | 'held' | 'text' = 'start';

  constructor(private readonly emit: (text: string) => void) {}

  push(text: string): void {
    if (this.state === 'text') {
      if (text) this.emit(text);
      return;
    }
    this.held += text;
    if (this.state === 'held') return;
    const lead = this.held.trimStart();
    if (!lead) return;
    if (lead.startsWith('{') || lead.startsWith(PYTHON_TAG)) this.state = 'held';
    else if (!PYTHON_TAG.startsWith(lead)) {
      this.state = 'text';
      this.emit(this.held);
      this.held = '';
    }
  }

  flush(): void {
    if (this.held) this.emit(this.held);
    this.held = '';
  }
}

export const JSON_CALLS: TemplateCallSyntax = {
  parse: parseJsonCalls,
  textFilter: (emit) => new JsonCallTextFilter(emit),
  forced: { prefix: '', schema: (force) => callSchema(force, 'parameters') },
};

/** The tools a template renders with, in the shape Hugging Face templates read (`tools`: [{type, function}]). */
export function templateTools(tools: readonly ToolDefinition[]): unknown[] {
  return tools.map((t) => ({
    type: 'function',
    function: {
      name: t.name,
      ...(t.description !== undefined ? { description: t.description } : {}),
      parameters: t.parameters ?? { type: 'object', properties: {} },
    },
  }));
}
