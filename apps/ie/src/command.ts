/**
 * What a command is: its arguments and typed flags (see flags.ts), examples and exit codes for
 * its help, and what it does. The usage line is generated from the definitions.
 */
import { existsSync, readdirSync, rmSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { CliError, EXIT, type ExitName } from './errors.js';
import { attachDashValues, checkValues, parseArgsOptions, usageLine, type Flags, type Positional, type Values } from './flags.js';

export interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
}

/** A command line that works, and what it does (shown under `examples:` in the help). */
export interface Example {
  command: string;
  does: string;
}

interface CommandInfo<F extends Flags> {
  name: string;
  summary: string;
  args: readonly Positional[];
  flags: F;
  examples: readonly Example[];
  /** The exit codes it can end with besides 0, 1 and 2 (which every command can). */
  exits: readonly ExitName[];
}

export interface CommandSpec<F extends Flags> extends CommandInfo<F> {
  run(values: Values<F>, positionals: string[], io: Io): Promise<number>;
}

/** A command with its generated usage line, its flags' types erased (main.ts holds them all in one list). */
export interface Command extends CommandInfo<Flags> {
  usage: string;
  /** How many positional arguments the command takes. */
  positionals: [min: number, max: number];
  run(values: Record<string, unknown>, positionals: string[], io: Io): Promise<number>;
}

/** A command from its definition; `const F` keeps each choice's values as literal types for `run`. */
export function defineCommand<const F extends Flags>(spec: CommandSpec<F> & ThisType<Command>): Command {
  const min = spec.args.filter((a) => !a.optional).length;
  return {
    ...spec,
    usage: usageLine(spec.name, spec.args, spec.flags),
    positionals: [min, spec.args.length],
    run: spec.run as Command['run'],
  };
}

/** The argument vector checked against the command's definitions: typed values (defaults and environment applied) and positionals. */
export function parse(
  cmd: Command,
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
): { values: Record<string, unknown>; positionals: string[] } {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: attachDashValues(cmd.flags, argv),
      options: parseArgsOptions(cmd.flags),
      allowPositionals: true,
      strict: true,
    });
  } catch (e) {
    throw new CliError('CLI_USAGE', `${(e as Error).message.split('\n')[0]}\nusage: ${cmd.usage}`);
  }
  const [min, max] = cmd.positionals;
  if (parsed.positionals.length < min || parsed.positionals.length > max) {
    throw new CliError(
      'CLI_USAGE',
      `${cmd.name} takes ${min === max ? min : `${min} to ${max}`} argument(s), got ${parsed.positionals.length}\nusage: ${cmd.usage}`,
    );
  }
  const values = checkValues(
    cmd.flags,
    parsed.values as Record<string, string | boolean | (string | boolean)[] | undefined>,
    env,
    cmd.usage,
  );
  return { values, positionals: parsed.positionals };
}

/** A bound the definitions cannot state (it depends on another flag): the same message as theirs. */
export function inRange(name: string, value: number | undefined, min: number, max: number): number | undefined {
  if (value !== undefined && (value < min || value > max))
    throw new CliError('CLI_USAGE', `--${name} must be an integer in ${min}..${max}, got ${JSON.stringify(String(value))}`);
  return value;
}

/** A narrower set of choices than the definition's, where another flag decides it (synth's --dtype per format). */
export function choice<T extends string>(name: string, value: string | undefined, allowed: readonly T[], dflt?: T): T | undefined {
  if (value === undefined) return dflt;
  if (!allowed.includes(value as T))
    throw new CliError('CLI_USAGE', `--${name} must be one of ${allowed.join(', ')}, got ${JSON.stringify(value)}`);
  return value as T;
}

/**
 * Runs `work` so that SIGINT/SIGTERM abort the current writer (removing its partial files)
 * before the process exits: an interrupted export leaves the previous model untouched.
 */
export async function withAbortOnSignal<T>(work: (register: (abortSync: () => void) => void) => Promise<T>): Promise<T> {
  const aborts: Array<() => void> = [];
  const handler = (sig: NodeJS.Signals) => {
    for (const a of aborts) a();
    process.stderr.write(`\nie: interrupted by ${sig}; partial output removed, any previous output is untouched\n`);
    process.exit(sig === 'SIGINT' ? EXIT.INTERRUPTED : EXIT.TERMINATED);
  };
  process.on('SIGINT', handler);
  process.on('SIGTERM', handler);
  try {
    return await work((a) => aborts.push(a));
  } finally {
    process.off('SIGINT', handler);
    process.off('SIGTERM', handler);
  }
}

/**
 * Removes what this process left half-written in `dir`. @ie/format's safe writes name every
 * temporary file `.<final>.partial-<pid>-<id>` and staging directory `.ie-staging-<pid>-<id>`,
 * so those with this pid are ours and nobody else's. Synchronous, for signal handlers.
 */
export function removeOwnPartials(dir: string): void {
  const ours = new RegExp(`^\\.(?:.+\\.partial|ie-staging)-${process.pid}-[0-9A-Za-z]+$`);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) if (ours.test(n)) rmSync(join(dir, n), { recursive: true, force: true });
}

/**
 * {@link withAbortOnSignal} for writers without an abort hook (@ie/format's HF and GGUF writers):
 * a signal removes their partial files in `dir`, and `dir` itself when it did not exist before.
 */
export function withCleanupOnSignal<T>(dir: string, work: () => Promise<T>): Promise<T> {
  const existed = existsSync(dir);
  return withAbortOnSignal((register) => {
    register(() => {
      removeOwnPartials(dir);
      if (!existed)
        try {
          rmdirSync(dir);
        } catch {
          // Not empty: something else was put there meanwhile; it is not ours to remove.
        }
    });
    return work();
  });
}
