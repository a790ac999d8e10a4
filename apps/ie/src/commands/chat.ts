import { createInterface } from 'node:readline';
import { Engine, IeRuntimeError, type ReasoningEffort } from '@ie/runtime';
import { choice, intFlag, type Command } from '../command.js';
import { CliError, EXIT } from '../errors.js';
import { ENGINE_OPTIONS, ENGINE_USAGE, describeEngine, engineOptions } from './engine-flags.js';

function numFlag(v: Record<string, unknown>, name: string, dflt: number): number {
  const raw = v[name];
  if (raw === undefined) return dflt;
  const n = Number(raw);
  if (typeof raw !== 'string' || raw.trim() === '' || !Number.isFinite(n))
    throw new CliError('CLI_USAGE', `--${name} must be a number, got ${JSON.stringify(raw)}`);
  return n;
}

export const chat: Command = {
  name: 'chat',
  summary: 'chat with a model in the terminal: multi-turn, streamed; Ctrl-C stops an answer, /reset clears, /exit quits',
  usage: `ie chat MODEL_DIR [--system TEXT] [-n|--max-tokens N] [--temperature T] [--top-p P] [-s|--seed S] [--reasoning low|medium|high] [--show-analysis] ${ENGINE_USAGE}`,
  positionals: [1, 1],
  options: {
    ...ENGINE_OPTIONS,
    system: { type: 'string' },
    'max-tokens': { type: 'string', short: 'n' },
    temperature: { type: 'string' },
    'top-p': { type: 'string' },
    seed: { type: 'string', short: 's' },
    reasoning: { type: 'string' },
    'show-analysis': { type: 'boolean' },
  },
  async run(v, [path], io) {
    const sampling = {
      temperature: numFlag(v, 'temperature', 0.8),
      topP: numFlag(v, 'top-p', 0.95),
      seed: intFlag(v, 'seed', 0, 2 ** 32 - 1),
      maxTokens: intFlag(v, 'max-tokens', 1, 1 << 24),
    };
    const reasoningEffort = choice(v, 'reasoning', ['low', 'medium', 'high'] as const) as ReasoningEffort | undefined;
    const engine = await Engine.load(path, engineOptions(v));
    const systemPrompt = v.system as string | undefined;
    // The session keeps the conversation; between turns the KV cache still holds it, so only the new message is prefilled.
    const session = engine.chatSession({ systemPrompt });
    const tty = process.stdin.isTTY === true;
    const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: tty, prompt: '> ' });
    let answering: AbortController | undefined;
    // Ctrl-C stops the answer being written, never the program (/exit or Ctrl-D does that).
    const interrupt = () => {
      if (answering) answering.abort(new Error('stopped by Ctrl-C'));
      else if (tty) {
        io.err('\n(/exit or Ctrl-D to quit)');
        rl.prompt();
      } else rl.close();
    };
    rl.on('SIGINT', interrupt);
    process.on('SIGINT', interrupt);
    try {
      for (const n of engine.notices) io.err(`ie: note: ${n}`);
      io.err(`ie: ${describeEngine(engine.info())}`);
      io.err('ie: /reset clears the conversation, /exit quits; Ctrl-C stops an answer');
      rl.prompt();
      for await (const raw of rl) {
        const line = raw.trim();
        if (line === '/exit' || line === '/quit') break;
        if (line === '/reset') {
          session.reset({ systemPrompt });
          io.err('(conversation cleared)');
        } else if (line.startsWith('/')) io.err(`(unknown command ${line}: /reset, /exit)`);
        else if (line !== '') {
          answering = new AbortController();
          try {
            const r = await session.prompt(raw, {
              ...sampling,
              // The context, by default: the answer ends when the model ends its turn.
              maxTokens: sampling.maxTokens ?? engine.contextLength,
              signal: answering.signal,
              reasoningEffort,
              currentDate: new Date().toISOString().slice(0, 10),
              onText: (text, channel) => {
                if (channel === 'analysis') {
                  if (v['show-analysis']) process.stderr.write(text);
                } else if (channel !== 'commentary') process.stdout.write(text);
              },
            });
            process.stdout.write('\n');
            const m = r.metrics;
            io.err(
              `[${m.promptTokens} prompt tokens (${m.cachedTokens} cached), ${m.generatedTokens} generated, ${m.decodeTokensPerSec.toFixed(1)} tok/s, stop: ${r.stopReason}]`,
            );
          } catch (e) {
            if (!(e instanceof IeRuntimeError && e.code === 'IE_ABORTED')) throw e;
            // A stopped turn leaves the conversation as it was before it.
            process.stdout.write('\n');
            io.err('(stopped)');
          } finally {
            answering = undefined;
          }
        }
        rl.prompt();
      }
      return EXIT.OK;
    } finally {
      process.off('SIGINT', interrupt);
      rl.close();
      await engine.dispose();
    }
  },
};
