import { describe, expect, it } from 'vitest';
import { parse, type Command } from './command.js';
import { EXIT, EXIT_MEANING } from './errors.js';
import { flagFacts, flagSpelling } from './flags.js';
import { commandHelp, mainHelp, wrap } from './help.js';
import { COMMANDS, main } from './main.js';

/** The help with its wrapped lines joined again, so a description can be searched whole. */
const unwrapped = (cmd: Command) => commandHelp(cmd).replace(/\n {2,}(?=\S)/g, (m) => (m.length > 8 ? ' ' : m));

/** An example's arguments after `ie` (or `…/cli.js`), split as a shell would (quotes, no expansion), up to a pipe. */
function argv(line: string): string[] {
  const words = [...line.matchAll(/"((?:\\.|[^"])*)"|'([^']*)'|(\S+)/g)].map((m) => m[1] ?? m[2] ?? m[3]);
  const start = words.findIndex((w) => w === 'ie' || w.endsWith('/cli.js'));
  const pipe = words.indexOf('|', start);
  return words.slice(start + 1, pipe < 0 ? undefined : pipe);
}

async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(args, { out: (s) => (out += `${s}\n`), err: (s) => (err += `${s}\n`) });
  return { code, out, err };
}

describe.each(COMMANDS.map((c) => [c.name, c] as const))('ie %s --help', (_name, cmd) => {
  it('describes every flag, with its default, environment variable and choices where defined', () => {
    const help = unwrapped(cmd);
    for (const [name, f] of Object.entries(cmd.flags)) {
      expect(f.description, name).toMatch(/^\S.*\S$/);
      const line = help.split('\n').find((l) => l.trimStart().startsWith(flagSpelling(name, f).trim()));
      expect(line, `--${name} in the table, with its description`).toContain(f.description);
      for (const fact of flagFacts(f)) expect(line, `--${name}`).toContain(fact);
      const env = f.env ?? f.engineEnv;
      if (env) expect(line).toContain(`env ${env}`);
      if (f.type === 'choice') for (const c of f.choices) expect(line).toContain(c);
      if (f.type !== 'boolean' && (f.default !== undefined || f.defaultText !== undefined)) expect(line).toContain('default: ');
    }
  });

  it('shows the generated usage, the arguments, the examples and the exit codes', () => {
    const help = commandHelp(cmd);
    expect(help.split('\n')[0]).toBe(`ie ${cmd.name} — ${cmd.summary}`);
    expect(help).toContain(`usage: ${cmd.usage}`);
    expect(cmd.usage.startsWith(`ie ${cmd.name}${cmd.args.map((a) => (a.optional ? ` [${a.name}]` : ` ${a.name}`)).join('')}`)).toBe(true);
    for (const [name, f] of Object.entries(cmd.flags))
      if (f.required) expect(cmd.usage).toContain(`--${name}${f.type === 'boolean' ? '' : ` ${f.arg}`}`);
    for (const a of cmd.args) expect(unwrapped(cmd)).toMatch(new RegExp(`\\n {2}${a.name} +${a.description.replace(/[()]/g, '\\$&')}`));
    expect(cmd.examples.length).toBeGreaterThanOrEqual(2);
    for (const e of cmd.examples) expect(help).toContain(`  ${e.command}\n`);
    for (const code of ['OK', 'FAILURE', 'USAGE', ...cmd.exits] as const)
      expect(help).toMatch(new RegExp(`\\n {2}${EXIT[code]} +${EXIT_MEANING[code].slice(0, 20).replace(/[()]/g, '\\$&')}`));
  });

  it('has examples that parse: every flag, value and argument count accepted', () => {
    for (const e of cmd.examples) {
      const args = argv(e.command);
      expect(args[0], e.command).toBe(cmd.name);
      expect(() => parse(cmd, args.slice(1), {}), e.command).not.toThrow();
    }
  });

  it('is what `ie <command> --help`, `ie <command> -h` and `ie help <command>` print on stdout, exit 0', async () => {
    const want = `${commandHelp(cmd)}\n`;
    for (const args of [
      [cmd.name, '--help'],
      [cmd.name, 'x', '-h'],
      ['help', cmd.name],
      ['--help', cmd.name],
    ])
      expect(await run(args), args.join(' ')).toEqual({ code: 0, out: want, err: '' });
  });
});

describe('ie --help', () => {
  it('lists every command with its summary, and the notes on --version, --json and clean stdout', async () => {
    const r = await run(['--help']);
    expect(r).toEqual({ code: 0, out: `${mainHelp(COMMANDS)}\n`, err: '' });
    const text = r.out.replace(/\s+/g, ' ');
    for (const c of COMMANDS) expect(text).toContain(`${c.name} ${c.summary}`);
    expect(text).toContain('ie --version');
    expect(text).toContain('--json');
    expect(text).toContain('pnpm -s ie');
    expect(text).toContain('node apps/ie/dist/cli.js');
    for (const c of COMMANDS.filter((c) => 'json' in c.flags)) expect(text).toMatch(new RegExp(`--json .*\\b${c.name}\\b`));
    expect((await run([])).out).toBe(r.out);
    expect((await run(['help'])).out).toBe(r.out);
  });

  it('ie help <unknown> is CLI_UNKNOWN_COMMAND, exit 2', async () => {
    const r = await run(['help', 'frobnicate']);
    expect(r.code).toBe(2);
    expect(r.err).toContain('CLI_UNKNOWN_COMMAND');
  });

  it('wraps long text under its column', () => {
    expect(wrap('aaa bbb ccc ddd', 7, 2)).toBe('aaa bbb\n  ccc ddd');
  });
});
