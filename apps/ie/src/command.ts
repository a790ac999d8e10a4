/** What a command is: its flags (node:util parseArgs), its help, and what it does. */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { CliError } from './errors.js';

export interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
}

export interface Command {
  name: string;
  summary: string;
  usage: string;
  options: NonNullable<ParseArgsConfig['options']>;
  /** How many positional arguments the command takes. */
  positionals: [min: number, max: number];
  run(values: Record<string, string | boolean | undefined>, positionals: string[], io: Io): Promise<number>;
}

export function parse(cmd: Command, argv: string[]): { values: Record<string, string | boolean | undefined>; positionals: string[] } {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: argv, options: cmd.options, allowPositionals: true, strict: true });
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
  return { values: parsed.values as Record<string, string | boolean | undefined>, positionals: parsed.positionals };
}

/** A required string flag. */
export function required(values: Record<string, unknown>, name: string, cmd: Command): string {
  const v = values[name];
  if (typeof v !== 'string' || v === '') throw new CliError('CLI_USAGE', `--${name} is required\nusage: ${cmd.usage}`);
  return v;
}

/** An integer flag within bounds. */
export function intFlag(values: Record<string, unknown>, name: string, min: number, max: number, dflt?: number): number | undefined {
  const v = values[name];
  if (v === undefined) return dflt;
  const n = Number(v);
  if (typeof v !== 'string' || !/^-?\d+$/.test(v) || !Number.isSafeInteger(n) || n < min || n > max)
    throw new CliError('CLI_USAGE', `--${name} must be an integer in ${min}..${max}, got ${JSON.stringify(v)}`);
  return n;
}

/** A flag whose value must be one of `allowed`. */
export function choice<T extends string>(values: Record<string, unknown>, name: string, allowed: readonly T[], dflt?: T): T | undefined {
  const v = values[name];
  if (v === undefined) return dflt;
  if (typeof v !== 'string' || !allowed.includes(v as T))
    throw new CliError('CLI_USAGE', `--${name} must be one of ${allowed.join(', ')}, got ${JSON.stringify(v)}`);
  return v as T;
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
    process.exit(sig === 'SIGINT' ? 130 : 143);
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
