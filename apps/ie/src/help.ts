/**
 * `ie --help` and `ie <command> --help`, rendered from the command definitions: what a user
 * reads is what the parser accepts.
 */
import type { Command } from './command.js';
import { EXIT, EXIT_MEANING, type ExitName } from './errors.js';
import { flagFacts, flagSpelling, type Flag } from './flags.js';
import { VERSION } from './version.js';

/** Help is read in a terminal or a pager; wrapped to the terminal, at most 100 columns. */
function width(): number {
  return Math.min(100, Math.max(60, process.stdout.columns ?? 100));
}

/** `text` word-wrapped to lines of `cols` characters, every line after the first indented by `indent` spaces. */
export function wrap(text: string, cols: number, indent: number): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && line.length + 1 + word.length > cols) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  lines.push(line);
  return lines.join(`\n${' '.repeat(indent)}`);
}

/** A two-column table: the left column padded to its widest cell, the right wrapped under itself. */
function twoColumns(rows: [string, string][], cols: number): string[] {
  const left = Math.max(...rows.map(([l]) => l.length));
  return rows.map(([l, r]) => `  ${l.padEnd(left)}   ${wrap(r, cols - left - 5, left + 5)}`);
}

/** A flag's line in the table: its description, then its choices, default and environment variable. */
export function flagLine(name: string, f: Flag): [string, string] {
  const facts = flagFacts(f);
  return [flagSpelling(name, f), facts.length ? `${f.description} (${facts.join('; ')})` : f.description];
}

const COMMON_EXITS: readonly ExitName[] = ['OK', 'FAILURE', 'USAGE'];

/** Everything about one command: summary, usage, arguments, flags by section, examples, exit codes. */
export function commandHelp(cmd: Command): string {
  const cols = width();
  const out = [`ie ${cmd.name} — ${cmd.summary}`, '', `usage: ${cmd.usage}`];
  if (cmd.args.length)
    out.push(
      '',
      'arguments:',
      ...twoColumns(
        cmd.args.map((a) => [a.name, a.description]),
        cols,
      ),
    );
  const sections = new Map<string, [string, string][]>();
  for (const [name, f] of Object.entries(cmd.flags)) {
    const s = f.section ?? 'options';
    sections.set(s, [...(sections.get(s) ?? []), flagLine(name, f)]);
  }
  sections.set('options', [...(sections.get('options') ?? []), ['-h, --help', 'show this help and exit']]);
  // One alignment for every section, so the tables read as one.
  const rows = [...sections.values()].flat();
  const left = Math.max(...rows.map(([l]) => l.length));
  for (const [s, rs] of sections)
    out.push(
      '',
      `${s}:`,
      ...twoColumns(
        rs.map(([l, r]) => [l.padEnd(left), r] as [string, string]),
        cols,
      ),
    );
  if (cmd.examples.length) {
    out.push('', 'examples:');
    for (const e of cmd.examples) out.push(`  ${e.command}`, `      ${wrap(e.does, cols - 6, 6)}`);
  }
  const exits = [...COMMON_EXITS, ...cmd.exits.filter((e) => !COMMON_EXITS.includes(e))].sort((a, b) => EXIT[a] - EXIT[b]);
  out.push(
    '',
    'exit codes:',
    ...twoColumns(
      exits.map((e) => [String(EXIT[e]), EXIT_MEANING[e]] as [string, string]),
      cols,
    ),
  );
  return out.join('\n');
}

/** `ie --help`: the commands with their summaries, and how to get clean output. */
export function mainHelp(commands: readonly Command[]): string {
  const cols = width();
  const json = commands.filter((c) => 'json' in c.flags).map((c) => c.name);
  return [
    `ie ${VERSION} — CPU inference engine for llama-family models`,
    '',
    'usage: ie <command> [arguments] [options]',
    '',
    'commands:',
    ...twoColumns(
      commands.map((c) => [c.name, c.summary]),
      cols,
    ),
    '',
    'notes:',
    ...twoColumns(
      [
        [
          'ie <command> --help',
          "a command's arguments, every flag with its default and environment variable, examples and exit codes (also: ie help <command>)",
        ],
        ['ie --version', "ie's version"],
        ['--json', `one JSON document on stdout, everything else on stderr (${json.join(', ')}; bench always prints JSON lines)`],
        [
          'clean stdout',
          "`pnpm ie …` prints pnpm's banner on stdout first: run `pnpm -s ie …` or `node apps/ie/dist/cli.js …` when piping ie's output (--json above all)",
        ],
      ],
      cols,
    ),
  ].join('\n');
}
