import { randomInt } from 'node:crypto';
import { jsonErrorPosition } from '@ie/format';
import {
  type ChatOptions,
  compileGrammar,
  Engine,
  type GenerateOptions,
  type ToolDefinition,
  type ReasoningEffort,
  schemaToGrammar,
  SchemaError,
  StructuredOutputError,
} from '@ie/runtime';
import { seedFlag } from '../flags.js';
import { defineCommand, type Io } from '../command.js';
import { CliError, EXIT } from '../errors.js';
import { bytes } from '../human.js';
import { readFlagText } from '../text-file.js';
import { ENGINE_FLAGS, describeEngine, engineOptions } from './engine-flags.js';

/** `--stop "\n\n"`: the shell passes a backslash and an n; \n, \t, \r and \\ are escapes, as in llama.cpp. */
export function unescapeStop(s: string): string {
  return s.replace(/\\([ntr\\])/g, (_, c: string) => ({ n: '\n', t: '\t', r: '\r', '\\': '\\' })[c] as string);
}

/** The text of a --prompt-file, --json-schema or --grammar FILE (a regular file, capped); unreadable is a usage error. */
function readFlagFile(flag: string, file: string): Promise<string> {
  return readFlagText(`--${flag} ${file}`, file);
}

/** A schema or grammar file's error, with the flag and the file named (its class and stable code kept). */
function structuredError(flag: string, file: string, e: unknown): unknown {
  if (e instanceof StructuredOutputError) e.message = `--${flag} ${file}: ${e.message}`;
  return e;
}

/**
 * The constraint flags as generate options: --json-schema FILE (a JSON schema), --grammar FILE
 * (GBNF) or --json-object, one at most. The schema or grammar is compiled here, before the model
 * loads, so a bad file fails in milliseconds; the engine compiles it again (cached) per request.
 */
export async function constraintOptions(v: {
  'json-schema'?: string;
  grammar?: string;
  'json-object'?: boolean;
}): Promise<Pick<GenerateOptions, 'jsonSchema' | 'grammar' | 'json'>> {
  const given = (['json-schema', 'grammar', 'json-object'] as const).filter((f) => v[f] !== undefined && v[f] !== false);
  if (given.length > 1)
    throw new CliError(
      'CLI_USAGE',
      `give one of --json-schema, --grammar and --json-object, not ${given.map((f) => `--${f}`).join(' and ')}`,
    );
  if (v['json-schema'] !== undefined) {
    const file = v['json-schema'];
    const text = await readFlagFile('json-schema', file);
    let schema: unknown;
    try {
      schema = JSON.parse(text);
    } catch (e) {
      throw structuredError(
        'json-schema',
        file,
        // Where, never what: the message must not quote the file.
        new SchemaError('IE_SCHEMA_INVALID', '', undefined, `the file is not JSON (${jsonErrorPosition(e)})`),
      );
    }
    try {
      schemaToGrammar(schema as object | boolean);
    } catch (e) {
      throw structuredError('json-schema', file, e);
    }
    return { jsonSchema: schema as object | boolean };
  }
  if (v.grammar !== undefined) {
    const file = v.grammar;
    const text = await readFlagFile('grammar', file);
    try {
      compileGrammar(text);
    } catch (e) {
      throw structuredError('grammar', file, e);
    }
    return { grammar: text };
  }
  return v['json-object'] ? { json: true } : {};
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export const generate = defineCommand({
  name: 'generate',
  summary: 'stream a continuation of a prompt (text to stdout, metrics to stderr)',
  args: [
    {
      name: 'MODEL_DIR',
      description: 'an IEBIN model directory (ie convert or ie synth makes one), or a GGUF file (converted once into IE_CACHE_DIR)',
    },
    { name: 'PROMPT', optional: true, description: 'the prompt, or - to read it from standard input (else give --prompt-file)' },
  ],
  flags: {
    'prompt-file': { type: 'string', arg: 'FILE', short: 'f', description: 'read the prompt from FILE instead of the argument' },
    'max-tokens': {
      type: 'number',
      integer: true,
      min: 0,
      max: 1 << 24,
      default: 256,
      arg: 'N',
      short: 'n',
      description: 'tokens to generate at most',
    },
    temperature: { type: 'number', arg: 'T', description: 'sampling temperature; 0 is greedy', defaultText: '0.8' },
    // Float sampling values are range-checked once, by @ie/runtime's sampler (IE_INVALID_OPTION names the option).
    'top-k': {
      type: 'number',
      integer: true,
      min: 0,
      max: 1 << 24,
      arg: 'K',
      description: 'sample from the K likeliest tokens; 0 turns it off',
      defaultText: '40',
    },
    'top-p': {
      type: 'number',
      arg: 'P',
      description: 'nucleus sampling: the likeliest tokens up to probability P',
      defaultText: '0.95',
    },
    'min-p': {
      type: 'number',
      arg: 'P',
      description: "drop tokens less likely than P times the top one's probability",
      defaultText: '0.05',
    },
    'repeat-penalty': {
      type: 'number',
      arg: 'R',
      description: 'above 1, discourage the tokens of the last 64 (positive logits divided by R, negative multiplied)',
      defaultText: '1, off',
    },
    'presence-penalty': {
      type: 'number',
      min: -2,
      max: 2,
      arg: 'P',
      description: "subtract P from the logit of every token of the last 64, once (OpenAI's presence_penalty)",
      defaultText: '0, off',
    },
    'frequency-penalty': {
      type: 'number',
      min: -2,
      max: 2,
      arg: 'F',
      description: "subtract F from the logit of every token of the last 64, once per occurrence (OpenAI's frequency_penalty)",
      defaultText: '0, off',
    },
    seed: seedFlag("the sampler's seed, for repeatable runs"),
    stop: {
      type: 'string',
      arg: 'TEXT',
      multiple: true,
      description: 'stop when the output ends with TEXT; \\n \\t \\r \\\\ are escapes, as in llama.cpp',
    },
    chat: { type: 'boolean', description: "send the prompt as a user message in the model's chat format" },
    system: { type: 'string', arg: 'TEXT', description: 'a system message before the prompt (with --chat)' },
    reasoning: {
      type: 'choice',
      arg: 'EFFORT',
      choices: ['low', 'medium', 'high'],
      description: 'reasoning effort of a gpt-oss (harmony) model (with --chat)',
      defaultText: "the model's",
    },
    'show-analysis': {
      type: 'boolean',
      description: "write the model's reasoning to stderr (with --chat): gpt-oss's analysis channel, a template's <think> block",
    },
    tools: {
      type: 'string',
      arg: 'FILE',
      description:
        "functions the model may call (with --chat): a JSON array of OpenAI's tools ({type: 'function', function: {name, description, parameters}}) or of {name, description, parameters}; each call prints as a JSON line {name, arguments}",
    },
    'tool-choice': {
      type: 'string',
      arg: 'CHOICE',
      description: 'auto (the default with --tools), none, required (a call to one of them), or a function name (a call to it)',
    },
    verify: {
      type: 'boolean',
      description: 'check every weight checksum, NaN/Inf and the tokenizer hash before running (what ie validate --deep checks)',
      engineEnv: 'IE_VERIFY',
    },
    'json-schema': {
      type: 'string',
      arg: 'FILE',
      section: 'structured output',
      description: 'constrain the output to the JSON schema in FILE: it always parses and validates',
    },
    grammar: {
      type: 'string',
      arg: 'FILE',
      section: 'structured output',
      description: "constrain the output to the GBNF grammar in FILE (llama.cpp's format, start rule root)",
    },
    'json-object': {
      type: 'boolean',
      section: 'structured output',
      description: 'constrain the output to a JSON object (any keys and values)',
    },
    'no-echo': { type: 'boolean', description: 'do not print the prompt before the continuation' },
    json: { type: 'boolean', description: 'print one JSON object (text, tokens, stop reason, metrics) instead of streaming' },
    ...ENGINE_FLAGS,
  },
  examples: [
    { command: 'ie generate models/stories260K "Once upon a time" -n 200 --temperature 0', does: 'greedy, 200 tokens at most' },
    {
      command: 'echo "The meaning of life" | ie generate models/tl - --precision int4w -t 2 --json',
      does: 'the prompt from standard input, weights converted to int4 at load, the result as JSON',
    },
    {
      command: 'ie generate models/tl "A person, as JSON:" --json-schema person.schema.json --no-echo',
      does: 'output that parses and validates against person.schema.json',
    },
    {
      command: 'ie generate models/tl "Why is the sky blue?" --chat --system "Be brief." --stop "\\n\\n"',
      does: "in the model's chat template, stopping at the first blank line",
    },
  ],
  exits: ['BAD_INPUT', 'INVALID_MODEL', 'INTERRUPTED'],
  async run(v, [path, given], io) {
    // The prompt: an argument, "-" for standard input, or --prompt-file (one of them).
    if ((given === undefined) === (v['prompt-file'] === undefined))
      throw new CliError(
        'CLI_USAGE',
        `give the prompt as an argument, "-" (standard input) or --prompt-file FILE, once\nusage: ${this.usage}`,
      );
    const prompt =
      v['prompt-file'] !== undefined
        ? await readFlagFile('prompt-file', v['prompt-file'])
        : given === '-'
          ? await readStdin()
          : (given as string);
    const options: GenerateOptions = {
      maxTokens: v['max-tokens'],
      temperature: v.temperature,
      topK: v['top-k'],
      topP: v['top-p'],
      minP: v['min-p'],
      repetitionPenalty: v['repeat-penalty'],
      presencePenalty: v['presence-penalty'],
      frequencyPenalty: v['frequency-penalty'],
      // Drawn here when not given, so that a run says its seed and can be repeated (as llama.cpp prints it).
      seed: v.seed ?? randomInt(2 ** 32),
      stop: v.stop?.map(unescapeStop),
      ...(await constraintOptions(v)),
    };
    const chatOnly = (['system', 'reasoning', 'show-analysis', 'tools', 'tool-choice'] as const).find((f) => v[f] !== undefined);
    if (v['tool-choice'] !== undefined && v.tools === undefined) throw new CliError('CLI_USAGE', '--tool-choice goes with --tools FILE');
    if (chatOnly && !v.chat)
      throw new CliError('CLI_USAGE', `--${chatOnly} goes with --chat (the prompt as a user message in the model's chat format)`);
    // --verify: every weight CRC, NaN/Inf and the tokenizer's sha256 checked before running (ie validate --deep's checks).
    const engine = await Engine.load(path, { ...engineOptions(v), ...(v.verify === true ? { verify: true } : {}) });
    const ac = new AbortController();
    const onSignal = () => ac.abort(new Error('interrupted'));
    process.once('SIGINT', onSignal);
    try {
      for (const n of engine.notices) io.err(`ie: note: ${n}`);
      if (v.chat) {
        await chatTurn(engine, prompt, { ...options, ...(await toolOptions(v)), signal: ac.signal }, v, io);
        return EXIT.OK;
      }
      const g = engine.generate(prompt, { ...options, signal: ac.signal });
      const echo = !v['no-echo'] && !v.json;
      if (echo) process.stdout.write(prompt);
      for await (const p of g) if (!v.json) process.stdout.write(p.text);
      const info = engine.info();
      const m = g.metrics;
      if (!m) throw new Error('generation ended without metrics');
      if (v.json) {
        io.out(
          JSON.stringify({
            text: g.text,
            tokens: g.tokens,
            stopReason: g.stopReason,
            precision: info.precision,
            activations: info.activations,
            int8Kernels: info.int8Activations,
            gemm: info.gemm,
            int8Gemm: info.int8Gemm,
            threads: info.threads,
            isa: info.isa,
            weightMemory: info.weightMemory.mode,
            seed: options.seed,
            metrics: m,
          }),
        );
      } else {
        process.stdout.write('\n');
        io.err(
          `ie: ${m.promptTokens} prompt tokens (${fixed(m.prefillTokensPerSec, 1)} tok/s), ${m.generatedTokens} generated (${fixed(m.decodeTokensPerSec, 1)} tok/s, p50 ${fixed(m.latencyP50Ms, 2, ' ms')}, p95 ${fixed(m.latencyP95Ms, 2, ' ms')}), TTFT ${fixed(m.ttftMs, 1, ' ms')}; ` +
            `${describeEngine(info)}; ${bytes(m.weightBytesPerToken)}/token -> ${fixed(m.effectiveGBs, 2, ' GB/s')}; KV cache ${bytes(m.kvCacheBytes)}; peak RSS ${bytes(m.peakRssBytes)}; seed ${options.seed}; stop: ${g.stopReason}`,
        );
      }
      return EXIT.OK;
    } finally {
      process.off('SIGINT', onSignal);
      await engine.dispose();
    }
  },
});

/**
 * `--tools FILE` and `--tool-choice` as chat options: the file's functions (OpenAI's tool objects or
 * bare {name, description, parameters}), checked by the engine when the prompt is made.
 */
async function toolOptions(v: { tools?: string; 'tool-choice'?: string }): Promise<Pick<ChatOptions, 'tools' | 'toolChoice'>> {
  if (v.tools === undefined) return {};
  const file = v.tools;
  let list: unknown;
  try {
    list = JSON.parse(await readFlagFile('tools', file));
  } catch (e) {
    if (e instanceof CliError) throw e;
    throw new CliError('CLI_USAGE', `--tools ${file}: the file is not JSON (${jsonErrorPosition(e)})`);
  }
  if (!Array.isArray(list)) throw new CliError('CLI_USAGE', `--tools ${file}: must hold a JSON array of functions`);
  const tools = list.map((t) =>
    typeof t === 'object' && t !== null && (t as { type?: unknown }).type === 'function' && 'function' in t
      ? (t as { function: unknown }).function
      : t,
  ) as ToolDefinition[];
  const c = v['tool-choice'];
  return { tools, toolChoice: c === undefined || c === 'auto' || c === 'none' || c === 'required' ? (c ?? 'auto') : { name: c } };
}

/** `--chat`: the prompt as the user's message in the model's chat format; the answer to stdout, or everything as JSON. */
async function chatTurn(
  engine: Engine,
  prompt: string,
  options: ChatOptions,
  v: { system?: string; reasoning?: ReasoningEffort; 'show-analysis'?: boolean; json?: boolean },
  io: Io,
): Promise<void> {
  // gpt-oss chats in harmony (channels, reasoning effort); other models through their own chat template (no effort; a <think> block is their reasoning).
  const harmony = engine.config.architecture === 'gpt-oss';
  if (!harmony && v.reasoning !== undefined)
    io.err(
      `ie: note: --reasoning applies to gpt-oss (harmony) models; this ${engine.config.architecture} model chats through its chat template`,
    );
  // The answer (final channel) to stdout as it comes; the reasoning to stderr when asked.
  const messages = [
    ...(v.system !== undefined ? [{ role: 'system' as const, content: v.system }] : []),
    { role: 'user' as const, content: prompt },
  ];
  const r = await engine.chat(messages, {
    ...options,
    reasoningEffort: v.reasoning,
    currentDate: new Date().toISOString().slice(0, 10),
    onText: v.json
      ? undefined
      : (text, channel) => (channel === 'final' ? process.stdout.write(text) : v['show-analysis'] ? process.stderr.write(text) : undefined),
  });
  if (v.json) {
    const { final, analysis, messages: all, ended, toolCalls, tokens, stopReason, metrics } = r;
    io.out(JSON.stringify({ final, analysis, messages: all, ended, toolCalls, tokens, stopReason, metrics }));
    return;
  }
  process.stdout.write('\n');
  // The calls, one JSON line each, after the answer's text (if it had any).
  for (const c of r.toolCalls) io.out(JSON.stringify({ name: c.name, arguments: c.arguments }));
  io.err(
    `ie: ${r.metrics.promptTokens} prompt tokens, ${r.metrics.generatedTokens} generated (${r.metrics.decodeTokensPerSec.toFixed(1)} tok/s); ${r.ended ? `turn ended (${r.ended})` : `stop: ${r.stopReason}`}`,
  );
}

/** A figure for the summary line: "n/a" where there was nothing to time (no token generated, a context full after one). */
function fixed(x: number, digits: number, unit = ''): string {
  return Number.isFinite(x) ? `${x.toFixed(digits)}${unit}` : 'n/a';
}
