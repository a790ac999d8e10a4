/** The `ie` command: dispatches to one module per command; errors become one line and an exit code. */
import { parse, type Command, type Io } from './command.js';
import { bench } from './commands/bench.js';
import { chat } from './commands/chat.js';
import { convert } from './commands/convert.js';
import { embed } from './commands/embed.js';
import { generate } from './commands/generate.js';
import { inspect } from './commands/inspect.js';
import { perplexity } from './commands/perplexity.js';
import { quantize } from './commands/quantize.js';
import { serve } from './commands/serve.js';
import { synth } from './commands/synth.js';
import { validate } from './commands/validate.js';
import { CliError, EXIT, describeError, exitCodeFor } from './errors.js';
import { commandHelp, mainHelp } from './help.js';
import { VERSION } from './version.js';

export const COMMANDS: Command[] = [synth, convert, quantize, inspect, validate, generate, bench, perplexity, serve, chat, embed];

function find(name: string): Command {
  const cmd = COMMANDS.find((c) => c.name === name);
  if (!cmd)
    throw new CliError(
      'CLI_UNKNOWN_COMMAND',
      `unknown command ${JSON.stringify(name)}; commands: ${COMMANDS.map((c) => c.name).join(', ')}`,
    );
  return cmd;
}

export async function main(
  argv: string[],
  io: Io = { out: (s) => process.stdout.write(`${s}\n`), err: (s) => process.stderr.write(`${s}\n`) },
): Promise<number> {
  const [name, ...rest] = argv;
  if (name === '--version' || name === '-v') {
    io.out(VERSION);
    return EXIT.OK;
  }
  try {
    // `ie help generate`, `ie --help generate` and `ie generate --help` are the same.
    const asksHelp = name === 'help' || name === '--help' || name === '-h';
    if (name === undefined || (asksHelp && rest[0] === undefined)) {
      io.out(mainHelp(COMMANDS));
      return EXIT.OK;
    }
    const cmd = find(asksHelp ? rest[0] : name);
    // Anywhere before `--`, as git and cargo take it: `ie generate M "hi" --help` still shows help.
    const flags = rest.includes('--') ? rest.slice(0, rest.indexOf('--')) : rest;
    if (asksHelp || flags.includes('--help') || flags.includes('-h')) {
      io.out(commandHelp(cmd));
      return EXIT.OK;
    }
    const { values, positionals } = parse(cmd, rest);
    return await cmd.run(values, positionals, io);
  } catch (e) {
    io.err(describeError(e));
    return exitCodeFor(e);
  }
}
