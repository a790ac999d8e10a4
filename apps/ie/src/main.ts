/** The `ie` command: dispatches to one module per command; errors become one line and an exit code. */
import { parse, type Command, type Io } from './command.js';
import { bench } from './commands/bench.js';
import { chat } from './commands/chat.js';
import { convert } from './commands/convert.js';
import { generate } from './commands/generate.js';
import { inspect } from './commands/inspect.js';
import { quantize } from './commands/quantize.js';
import { serve } from './commands/serve.js';
import { synth } from './commands/synth.js';
import { validate } from './commands/validate.js';
import { CliError, EXIT, describeError, exitCodeFor } from './errors.js';
import { VERSION } from './version.js';

export const COMMANDS: Command[] = [synth, convert, quantize, inspect, validate, generate, bench, serve, chat];

function help(): string {
  const w = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    `ie ${VERSION} — CPU inference engine for llama-family models`,
    '',
    'usage: ie <command> [options]',
    '',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(w)}  ${c.summary}`),
    '',
    "ie <command> --help shows a command's options.",
  ].join('\n');
}

export async function main(
  argv: string[],
  io: Io = { out: (s) => process.stdout.write(`${s}\n`), err: (s) => process.stderr.write(`${s}\n`) },
): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    const cmd = COMMANDS.find((c) => c.name === rest[0]);
    io.out(cmd ? `usage: ${cmd.usage}\n\n${cmd.summary}` : help());
    return EXIT.OK;
  }
  if (name === '--version' || name === '-v') {
    io.out(VERSION);
    return EXIT.OK;
  }
  try {
    const cmd = COMMANDS.find((c) => c.name === name);
    if (!cmd)
      throw new CliError(
        'CLI_UNKNOWN_COMMAND',
        `unknown command ${JSON.stringify(name)}; commands: ${COMMANDS.map((c) => c.name).join(', ')}`,
      );
    if (rest.includes('--help') || rest.includes('-h')) {
      io.out(`usage: ${cmd.usage}\n\n${cmd.summary}`);
      return EXIT.OK;
    }
    const { values, positionals } = parse(cmd, rest);
    return await cmd.run(values, positionals, io);
  } catch (e) {
    io.err(describeError(e));
    return exitCodeFor(e);
  }
}
