import { createInterface } from 'node:readline';
import { Engine, IeRuntimeError, type ReasoningEffort } from '@ie/runtime';
import { seedFlag } from '../flags.js';
import { defineCommand } from '../command.js';
import { EXIT } from '../errors.js';
import { ENGINE_FLAGS, describeEngine, engineOptions } from './engine-flags.js';

export const chat = defineCommand({
  name: 'chat',
  summary: 'chat with a model in the terminal: multi-turn, streamed; Ctrl-C stops an answer, /reset clears, /exit quits',
  args: [{ name: 'MODEL_DIR', description: 'an IEBIN model directory or a GGUF file, with a chat template (or a gpt-oss model)' }],
  flags: {
    system: { type: 'string', arg: 'TEXT', description: 'the system message the conversation starts with' },
    'max-tokens': {
      type: 'number',
      integer: true,
      min: 1,
      max: 1 << 24,
      arg: 'N',
      short: 'n',
      description: 'tokens per answer at most',
      defaultText: 'the context: the answer ends with the turn',
    },
    temperature: { type: 'number', default: 0.8, arg: 'T', description: 'sampling temperature; 0 is greedy' },
    'top-p': { type: 'number', default: 0.95, arg: 'P', description: 'nucleus sampling: the likeliest tokens up to probability P' },
    seed: seedFlag("the sampler's seed"),
    reasoning: {
      type: 'choice',
      arg: 'EFFORT',
      choices: ['low', 'medium', 'high'],
      description: 'reasoning effort of a gpt-oss (harmony) model',
      defaultText: "the model's",
    },
    'show-analysis': {
      type: 'boolean',
      description: "write the model's reasoning to stderr (gpt-oss's analysis channel, a template's <think> block)",
    },
    ...ENGINE_FLAGS,
  },
  examples: [
    { command: 'ie chat models/tl --system "You are terse."', does: 'a conversation in the terminal' },
    { command: 'printf "hi\\n/exit\\n" | ie chat models/tl --temperature 0', does: 'scripted: one line per turn on standard input' },
  ],
  exits: ['BAD_INPUT'],
  async run(v, [path], io) {
    const sampling = { temperature: v.temperature, topP: v['top-p'], seed: v.seed, maxTokens: v['max-tokens'] };
    const reasoningEffort: ReasoningEffort | undefined = v.reasoning;
    const engine = await Engine.load(path, engineOptions(v));
    const systemPrompt = v.system;
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
});
