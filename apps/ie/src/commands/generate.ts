import { readFile } from 'node:fs/promises';
import { Engine, type GenerateOptions, type ReasoningEffort } from '@ie/runtime';
import { intFlag, type Command } from '../command.js';
import { CliError, EXIT } from '../errors.js';
import { bytes } from '../human.js';
import { ENGINE_OPTIONS, ENGINE_USAGE, describeEngine, engineOptions } from './engine-flags.js';

function numFlag(v: Record<string, unknown>, name: string): number | undefined {
  const raw = v[name];
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (typeof raw !== 'string' || raw.trim() === '' || !Number.isFinite(n))
    throw new CliError('CLI_USAGE', `--${name} must be a number, got ${JSON.stringify(raw)}`);
  return n;
}

/** `--stop "\n\n"`: the shell passes a backslash and an n; \n, \t, \r and \\ are escapes, as in llama.cpp. */
export function unescapeStop(s: string): string {
  return s.replace(/\\([ntr\\])/g, (_, c: string) => ({ n: '\n', t: '\t', r: '\r', '\\': '\\' })[c] as string);
}

async function readPrompt(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (e) {
    throw new CliError('CLI_USAGE', `--prompt-file ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export const generate: Command = {
  name: 'generate',
  summary: 'stream a continuation of a prompt (text to stdout, metrics to stderr)',
  usage: `ie generate MODEL_DIR ("prompt" | - | --prompt-file FILE) [--chat [--system TEXT] [--reasoning low|medium|high] [--show-analysis]] [-n|--max-tokens N] [--temperature T] [--top-k K] [--top-p P] [--min-p P] [--repeat-penalty R] [-s|--seed S] [--stop TEXT]... (\\n \\t \\r \\\\ are escapes) ${ENGINE_USAGE} [--verify] [--no-echo] [--json]`,
  positionals: [1, 2],
  options: {
    ...ENGINE_OPTIONS,
    'max-tokens': { type: 'string', short: 'n' },
    temperature: { type: 'string' },
    'top-k': { type: 'string' },
    'top-p': { type: 'string' },
    'min-p': { type: 'string' },
    'repeat-penalty': { type: 'string' },
    seed: { type: 'string', short: 's' },
    'prompt-file': { type: 'string' },
    stop: { type: 'string', multiple: true },
    'no-echo': { type: 'boolean' },
    json: { type: 'boolean' },
    chat: { type: 'boolean' },
    system: { type: 'string' },
    reasoning: { type: 'string' },
    'show-analysis': { type: 'boolean' },
    verify: { type: 'boolean' },
  },
  async run(v, [path, given], io) {
    // The prompt: an argument, "-" for standard input, or --prompt-file (one of them).
    if ((given === undefined) === (v['prompt-file'] === undefined))
      throw new CliError(
        'CLI_USAGE',
        `give the prompt as an argument, "-" (standard input) or --prompt-file FILE, once\nusage: ${this.usage}`,
      );
    const prompt =
      v['prompt-file'] !== undefined ? await readPrompt(v['prompt-file'] as string) : given === '-' ? await readStdin() : (given as string);
    const options: GenerateOptions = {
      maxTokens: intFlag(v, 'max-tokens', 0, 1 << 24, 256),
      temperature: numFlag(v, 'temperature'),
      topK: intFlag(v, 'top-k', 0, 1 << 24),
      topP: numFlag(v, 'top-p'),
      minP: numFlag(v, 'min-p'),
      repetitionPenalty: numFlag(v, 'repeat-penalty'),
      seed: intFlag(v, 'seed', 0, 2 ** 32 - 1),
      stop: (v.stop as unknown as string[] | undefined)?.map(unescapeStop),
    };
    const chatOnly = (['system', 'reasoning', 'show-analysis'] as const).find((f) => v[f] !== undefined);
    if (chatOnly && !v.chat)
      throw new CliError('CLI_USAGE', `--${chatOnly} goes with --chat (the prompt as a user message in the model's chat format)`);
    const reasoning = v.reasoning as string | undefined;
    if (reasoning !== undefined && !['low', 'medium', 'high'].includes(reasoning))
      throw new CliError('CLI_USAGE', `--reasoning must be low, medium or high, got ${JSON.stringify(reasoning)}`);
    // --verify: every weight CRC, NaN/Inf and the tokenizer's sha256 checked before running (ie validate --deep's checks).
    const engine = await Engine.load(path, { ...engineOptions(v), ...(v.verify === true ? { verify: true } : {}) });
    const ac = new AbortController();
    const onSignal = () => ac.abort(new Error('interrupted'));
    process.once('SIGINT', onSignal);
    try {
      for (const n of engine.notices) io.err(`ie: note: ${n}`);
      if (v.chat) {
        // gpt-oss chats in harmony (channels, reasoning effort); other models through their own chat template, which has neither.
        const harmony = engine.config.architecture === 'gpt-oss';
        for (const f of ['reasoning', 'show-analysis'] as const)
          if (!harmony && v[f] !== undefined)
            io.err(
              `ie: note: --${f} applies to gpt-oss (harmony) models; this ${engine.config.architecture} model chats through its chat template`,
            );
        // The answer (final channel) to stdout as it comes; the reasoning to stderr when asked.
        const messages = [
          ...(v.system !== undefined ? [{ role: 'system' as const, content: v.system as string }] : []),
          { role: 'user' as const, content: prompt },
        ];
        const r = await engine.chat(messages, {
          ...options,
          signal: ac.signal,
          reasoningEffort: reasoning as ReasoningEffort | undefined,
          currentDate: new Date().toISOString().slice(0, 10),
          onText: v.json
            ? undefined
            : (text, channel) =>
                channel === 'final' ? process.stdout.write(text) : v['show-analysis'] ? process.stderr.write(text) : undefined,
        });
        if (v.json)
          io.out(
            JSON.stringify({
              final: r.final,
              analysis: r.analysis,
              messages: r.messages,
              ended: r.ended,
              tokens: r.tokens,
              stopReason: r.stopReason,
              metrics: r.metrics,
            }),
          );
        else {
          process.stdout.write('\n');
          io.err(
            `ie: ${r.metrics.promptTokens} prompt tokens, ${r.metrics.generatedTokens} generated (${r.metrics.decodeTokensPerSec.toFixed(1)} tok/s); ${r.ended ? `turn ended (${r.ended})` : `stop: ${r.stopReason}`}`,
          );
        }
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
            threads: info.threads,
            isa: info.isa,
            metrics: m,
          }),
        );
      } else {
        process.stdout.write('\n');
        io.err(
          `ie: ${m.promptTokens} prompt tokens (${m.prefillTokensPerSec.toFixed(1)} tok/s), ${m.generatedTokens} generated (${m.decodeTokensPerSec.toFixed(1)} tok/s, p50 ${m.latencyP50Ms.toFixed(2)} ms, p95 ${m.latencyP95Ms.toFixed(2)} ms), TTFT ${m.ttftMs.toFixed(1)} ms; ` +
            `${describeEngine(info)}; ${bytes(m.weightBytesPerToken)}/token -> ${m.effectiveGBs.toFixed(2)} GB/s; KV cache ${bytes(m.kvCacheBytes)}; peak RSS ${bytes(m.peakRssBytes)}; stop: ${g.stopReason}`,
        );
      }
      return EXIT.OK;
    } finally {
      process.off('SIGINT', onSignal);
      await engine.dispose();
    }
  },
};
