/**
 * Typed flag definitions: one object per flag says its type, short alias, description, default,
 * environment variable and bounds. parseArgs' config, validation, the usage line and the help
 * table are all derived from it, so none of them can drift from the others.
 */
import type { ParseArgsConfig } from 'node:util';
import { CliError } from './errors.js';

interface FlagCommon {
  /** One line, lower case, no final period: what the flag does. */
  description: string;
  /** A one-letter alias (`-t`). */
  short?: string;
  /** The flag may repeat; its value is then an array. */
  multiple?: boolean;
  /** The command cannot run without it (`--NAME is required`). */
  required?: boolean;
  /** The default as users read it, where the code decides it (`physical cores`, `the file's own`). */
  defaultText?: string;
  /** An environment variable this parser falls back to when the flag is absent. */
  env?: string;
  /** An environment variable @ie/runtime reads when the flag is absent (the engine resolves its environment once). */
  engineEnv?: string;
  /** The help section it is listed under; `options` by default. */
  section?: string;
  /** Flags that share this name are alternatives: exactly one of them is given (`(--a X | --b Y)` in the usage). */
  oneOf?: string;
}

export interface BooleanFlag extends FlagCommon {
  type: 'boolean';
}

export interface StringFlag extends FlagCommon {
  type: 'string';
  /** The value's name in the usage line: FILE, DIR, TEXT. */
  arg: string;
  default?: string;
}

export interface NumberFlag extends FlagCommon {
  type: 'number';
  arg: string;
  /** Whole numbers only (the bounds then apply as `an integer in min..max`). */
  integer?: boolean;
  min?: number;
  max?: number;
  default?: number;
}

export interface ChoiceFlag<C extends string = string> extends FlagCommon {
  type: 'choice';
  arg: string;
  choices: readonly C[];
  default?: C;
}

export type Flag = BooleanFlag | StringFlag | NumberFlag | ChoiceFlag;
export type Flags = Record<string, Flag>;

/** `-t, --threads N`: a thread count, 1..1024 (one definition for every command that takes one). */
export function threadsFlag(description: string, defaultText: string, more: Pick<FlagCommon, 'engineEnv' | 'section'> = {}): NumberFlag {
  return { type: 'number', integer: true, min: 1, max: 1024, arg: 'N', short: 't', description, defaultText, ...more };
}

/** `-s, --seed S`: a sampler's seed, 0..2^32-1, random when absent. */
export function seedFlag(description: string): NumberFlag {
  return { type: 'number', integer: true, min: 0, max: 2 ** 32 - 1, arg: 'S', short: 's', description, defaultText: 'random' };
}

type ValueOf<F> = F extends { type: 'boolean' }
  ? boolean
  : F extends { type: 'number' }
    ? number
    : F extends { type: 'choice'; choices: readonly (infer C)[] }
      ? C
      : string;
type Present<F> = F extends { default: unknown } | { required: true } ? true : false;

/** The parsed values of a set of flags, typed as the definitions say (what parseArgs infers, and more). */
export type Values<F extends Flags> = {
  -readonly [K in keyof F]: F[K] extends { multiple: true }
    ? ValueOf<F[K]>[] | undefined
    : Present<F[K]> extends true
      ? ValueOf<F[K]>
      : ValueOf<F[K]> | undefined;
};

/** node:util parseArgs' options for these flags: numbers and choices arrive as strings and are checked after. */
export function parseArgsOptions(flags: Flags): NonNullable<ParseArgsConfig['options']> {
  const out: NonNullable<ParseArgsConfig['options']> = {};
  for (const [name, f] of Object.entries(flags)) {
    out[name] = {
      type: f.type === 'boolean' ? 'boolean' : 'string',
      ...(f.short ? { short: f.short } : {}),
      ...(f.multiple ? { multiple: true } : {}),
    };
  }
  return out;
}

/**
 * argv with a value that begins with '-' attached to its flag (`-n -1` -> `--max-tokens=-1`, `--stop
 * -END-` -> `--stop=-END-`), which parseArgs would refuse as ambiguous: a negative number after a
 * number flag, and after a text flag anything that is not one of these flags. The values are then
 * checked like any other (a negative count gets its range in the message).
 */
export function attachDashValues(flags: Flags, argv: readonly string[]): string[] {
  const byShort = new Map(Object.entries(flags).flatMap(([name, f]) => (f.short ? [[f.short, name] as const] : [])));
  const flagOf = (a: string): string | undefined => {
    if (a.startsWith('--')) {
      const name = a.slice(2).split('=')[0];
      return name in flags ? name : undefined;
    }
    return a.length === 2 && a[0] === '-' ? byShort.get(a[1]) : undefined;
  };
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--') {
      out.push(...argv.slice(i));
      break;
    }
    const name = a.includes('=') ? undefined : flagOf(a);
    const f = name === undefined ? undefined : flags[name];
    const next = argv[i + 1];
    const attach =
      f !== undefined &&
      next !== undefined &&
      next.length > 1 &&
      next[0] === '-' &&
      (f.type === 'number' ? /^-(\d|\.\d|inf|nan)/i.test(next) : f.type !== 'boolean' && next !== '--' && flagOf(next) === undefined);
    if (attach) {
      out.push(`--${name}=${next}`);
      i++;
    } else out.push(a);
  }
  return out;
}

/** One value checked against its definition; `from` names where it came from (`--threads` or `IE_THREADS`). */
function checkValue(f: Flag, from: string, raw: string | boolean): string | number | boolean {
  if (f.type === 'boolean' || f.type === 'string') return raw;
  const s = String(raw);
  if (f.type === 'choice') {
    if (!f.choices.includes(s)) throw new CliError('CLI_USAGE', `${from} must be one of ${f.choices.join(', ')}, got ${JSON.stringify(s)}`);
    return s;
  }
  const n = Number(s);
  const lo = f.min ?? Number.MIN_SAFE_INTEGER;
  const hi = f.max ?? Number.MAX_SAFE_INTEGER;
  if (f.integer) {
    if (!/^-?\d+$/.test(s) || !Number.isSafeInteger(n) || n < lo || n > hi)
      throw new CliError('CLI_USAGE', `${from} must be an integer in ${lo}..${hi}, got ${JSON.stringify(s)}`);
    return n;
  }
  if (s.trim() === '' || !Number.isFinite(n)) throw new CliError('CLI_USAGE', `${from} must be a number, got ${JSON.stringify(s)}`);
  if (n < lo || n > hi) throw new CliError('CLI_USAGE', `${from} must be a number in ${lo}..${hi}, got ${JSON.stringify(s)}`);
  return n;
}

/**
 * Checks and converts what parseArgs returned: numbers and choices by their definitions, then
 * the environment fallback and the default for absent flags, then required flags.
 */
export function checkValues(
  flags: Flags,
  parsed: Record<string, string | boolean | (string | boolean)[] | undefined>,
  env: NodeJS.ProcessEnv,
  usage: string,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, f] of Object.entries(flags)) {
    const raw = parsed[name];
    if (raw !== undefined) {
      out[name] = Array.isArray(raw) ? raw.map((r) => checkValue(f, `--${name}`, r)) : checkValue(f, `--${name}`, raw);
    } else if (f.env && env[f.env]) {
      const fromEnv = env[f.env] as string;
      if (f.type === 'boolean' && fromEnv !== '0' && fromEnv !== '1')
        throw new CliError('CLI_USAGE', `${f.env} must be 0 or 1, got ${JSON.stringify(fromEnv)}`);
      const value = f.type === 'boolean' ? fromEnv === '1' : checkValue(f, f.env, fromEnv);
      out[name] = f.multiple ? [value] : value;
    } else if (f.type !== 'boolean' && f.default !== undefined) {
      out[name] = f.multiple ? [f.default] : f.default;
    }
    if (f.required && (out[name] === undefined || out[name] === ''))
      throw new CliError('CLI_USAGE', `--${name} is required${f.env ? ` (or ${f.env})` : ''}\nusage: ${usage}`);
  }
  for (const [group, names] of alternatives(flags)) {
    const given = names.filter((n) => out[n] !== undefined);
    if (given.length !== 1)
      throw new CliError(
        'CLI_USAGE',
        `give ${given.length ? 'only ' : ''}one of ${names.map((n) => `--${n}`).join(', ')} (the ${group})\nusage: ${usage}`,
      );
  }
  return out;
}

/** The `oneOf` groups, by group name, each with its flags in definition order. */
export function alternatives(flags: Flags): Map<string, string[]> {
  const groups = new Map<string, string[]>();
  for (const [name, f] of Object.entries(flags)) if (f.oneOf) groups.set(f.oneOf, [...(groups.get(f.oneOf) ?? []), name]);
  return groups;
}

/** `--threads N` or `--json`: the flag as the usage line writes it. */
function usageSpelling(name: string, f: Flag): string {
  return `--${name}${f.type === 'boolean' ? '' : ` ${f.arg}`}`;
}

/** A positional argument: its name in the usage line, what it is, and whether it may be left out. */
export interface Positional {
  name: string;
  description: string;
  optional?: boolean;
}

/** `ie NAME ARGS (--a X | --b Y) --required Z [options]`, from the definitions. */
export function usageLine(command: string, args: readonly Positional[], flags: Flags): string {
  const parts = [`ie ${command}`];
  for (const a of args) parts.push(a.optional ? `[${a.name}]` : a.name);
  for (const names of alternatives(flags).values()) parts.push(`(${names.map((n) => usageSpelling(n, flags[n])).join(' | ')})`);
  for (const [name, f] of Object.entries(flags)) if (f.required) parts.push(usageSpelling(name, f));
  if (Object.values(flags).some((f) => !f.required && !f.oneOf)) parts.push('[options]');
  return parts.join(' ');
}

/** `--threads N`, `-t, --threads N`: how the flag is written in the help table. */
export function flagSpelling(name: string, f: Flag): string {
  const long = `--${name}${f.type === 'boolean' ? '' : ` ${f.arg}`}`;
  return f.short ? `-${f.short}, ${long}` : `    ${long}`;
}

/** The parenthesised facts after a flag's description: choices, default, environment. */
export function flagFacts(f: Flag): string[] {
  const facts: string[] = [];
  if (f.type === 'choice') facts.push(`one of: ${f.choices.join(', ')}`);
  const n = (x: number) => x.toLocaleString('en-US');
  if (f.type === 'number' && f.min !== undefined) facts.push(f.max === undefined ? `at least ${n(f.min)}` : `${n(f.min)}..${n(f.max)}`);
  else if (f.type === 'number' && f.max !== undefined) facts.push(`at most ${n(f.max)}`);
  const dflt = f.defaultText ?? (f.type !== 'boolean' && f.default !== undefined ? String(f.default) : undefined);
  if (dflt !== undefined) facts.push(`default: ${dflt}`);
  const env = f.env ?? f.engineEnv;
  if (env) facts.push(`env ${env}`);
  if (f.multiple) facts.push('repeatable');
  return facts;
}
