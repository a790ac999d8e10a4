/**
 * A JSON schema's `pattern` as GBNF over JSON string content: the simple regular-expression subset
 * (literals, escapes \d \w \s and their negations, classes, `.`, groups, alternation, quantifiers,
 * ^ and $ at the ends), parsed by recursive descent one construct per method. Anything else
 * (backreferences, lookaround, \b, flags) is refused through `fail`.
 */
import { MAX_CODE_POINT, normalizeRanges } from './grammar.js';

const hexEsc = (cp: number) =>
  cp <= 0xff
    ? `\\x${cp.toString(16).padStart(2, '0')}`
    : cp <= 0xffff
      ? `\\u${cp.toString(16).padStart(4, '0')}`
      : `\\U${cp.toString(16).padStart(8, '0')}`;

/** A GBNF class of code-point ranges (every character escaped, so any code point is safe). */
const classOf = (ranges: number[]) => {
  let s = '[';
  for (let i = 0; i < ranges.length; i += 2)
    s += ranges[i] === ranges[i + 1] ? hexEsc(ranges[i]) : `${hexEsc(ranges[i])}-${hexEsc(ranges[i + 1])}`;
  return `${s}]`;
};

/** Ranges minus ranges. */
function subtract(a: number[], b: number[]): number[] {
  const nb = normalizeRanges(b, true);
  const out: number[] = [];
  for (let i = 0; i < a.length; i += 2)
    for (let j = 0; j < nb.length; j += 2) {
      const lo = Math.max(a[i], nb[j]);
      const hi = Math.min(a[i + 1], nb[j + 1]);
      if (lo <= hi) out.push(lo, hi);
    }
  return out;
}
const has = (ranges: number[], cp: number) => {
  for (let i = 0; i < ranges.length; i += 2) if (cp >= ranges[i] && cp <= ranges[i + 1]) return true;
  return false;
};

/**
 * JSON string content (the text between the quotes) matching one character of `ranges`: the raw
 * character where JSON allows it raw, its escape where JSON requires one.
 */
function contentChar(ranges: number[]): string {
  const raw = subtract(ranges, [0, 0x1f, 0x22, 0x22, 0x5c, 0x5c]);
  const alts: string[] = [];
  if (raw.length > 0) alts.push(classOf(raw));
  if (has(ranges, 0x22)) alts.push('"\\\\\\""');
  if (has(ranges, 0x5c)) alts.push('"\\\\\\\\"');
  const named: Record<number, string> = { 8: 'b', 9: 't', 10: 'n', 12: 'f', 13: 'r' };
  for (let cp = 0; cp < 0x20; cp++)
    if (has(ranges, cp)) alts.push(named[cp] ? `"\\\\${named[cp]}"` : `"\\\\u00${cp.toString(16).padStart(2, '0')}"`);
  if (alts.length === 0) return '[^\\x00-\\U0010FFFF]';
  return alts.length === 1 ? alts[0] : `(${alts.join(' | ')})`;
}

const DIGIT = [0x30, 0x39];
const WORD = normalizeRanges([0x30, 0x39, 0x41, 0x5a, 0x61, 0x7a, 0x5f, 0x5f]);
// JavaScript's \s (the validator's regex flavour): ECMAScript WhiteSpace and LineTerminator.
const SPACE = normalizeRanges([
  9, 13, 0x20, 0x20, 0xa0, 0xa0, 0x1680, 0x1680, 0x2000, 0x200a, 0x2028, 0x2029, 0x202f, 0x202f, 0x205f, 0x205f, 0x3000, 0x3000, 0xfeff,
  0xfeff,
]);
const DOT = normalizeRanges([0x0a, 0x0a, 0x0d, 0x0d, 0x2028, 0x2029], true);

/** \d \w \s and their negations as ranges; undefined for any other escape letter. */
function escapeSet(c: string | undefined): number[] | undefined {
  switch (c) {
    case 'd':
      return DIGIT;
    case 'D':
      return normalizeRanges(DIGIT, true);
    case 'w':
      return WORD;
    case 'W':
      return normalizeRanges(WORD, true);
    case 's':
      return SPACE;
    case 'S':
      return normalizeRanges(SPACE, true);
    default:
      return undefined;
  }
}

const NAMED_ESCAPES: Record<string, number> = { n: 10, r: 13, t: 9, f: 12, v: 11, '0': 0 };

/** The grammar of the (unanchored) pattern text `src`, one construct per method; `pos` is the read position. */
class PatternParser {
  private pos = 0;
  constructor(
    private readonly src: string,
    private readonly fail: (why: string) => never,
  ) {}

  /** The whole source as one expression; refuses anything left over. */
  parse(): string {
    const body = this.alternation();
    const { src, pos } = this;
    if (pos < src.length) this.fail(src[pos] === ')' ? 'has an unmatched )' : `cannot be parsed at offset ${pos}`);
    return body;
  }

  /** The character at `pos` (a whole surrogate pair), consumed. */
  private codePoint(): number {
    const cp = this.src.codePointAt(this.pos) as number;
    this.pos += cp > 0xffff ? 2 : 1;
    return cp;
  }

  /** The character an escape stands for, read after its backslash. */
  private escapedChar(): number {
    const c = this.src[this.pos++];
    if (c === undefined) this.fail('ends in a lone backslash');
    if (NAMED_ESCAPES[c] !== undefined) return NAMED_ESCAPES[c];
    if (c === 'x' || c === 'u') {
      const n = c === 'x' ? 2 : 4;
      const h = this.src.slice(this.pos, this.pos + n);
      if (!/^[0-9A-Fa-f]+$/.test(h) || h.length !== n) this.fail(`\\${c} needs ${n} hex digits`);
      this.pos += n;
      return Number.parseInt(h, 16);
    }
    if (/[\^$\\.*+?()[\]{}|/-]/.test(c)) return c.codePointAt(0) as number;
    this.fail(
      `uses \\${c}, which is not in the supported subset (\\d \\w \\s \\D \\W \\S, \\n \\t \\r, \\xHH, \\uHHHH, escaped punctuation)`,
    );
  }

  /** One end of a class range: an escaped or a plain character. */
  private classChar(): number {
    if (this.src[this.pos] !== '\\') return this.codePoint();
    this.pos++;
    return this.escapedChar();
  }

  /** `[...]` or `[^...]` as ranges; a `]` right after the opening bracket is a member. */
  private charClass(): number[] {
    const { src } = this;
    this.pos++;
    const negate = src[this.pos] === '^';
    if (negate) this.pos++;
    const pairs: number[] = [];
    let first = true;
    while (src[this.pos] !== ']' || first) {
      first = false;
      if (this.pos >= src.length) this.fail('has an unclosed [');
      const set = src[this.pos] === '\\' ? escapeSet(src[this.pos + 1]) : undefined;
      if (set) {
        this.pos += 2;
        pairs.push(...set);
        continue;
      }
      const lo = this.classChar();
      let hi = lo;
      if (src[this.pos] === '-' && src[this.pos + 1] !== ']' && this.pos + 1 < src.length) {
        this.pos++;
        hi = this.classChar();
        if (hi < lo) this.fail('has a reversed range in a class');
      }
      pairs.push(lo, hi);
    }
    this.pos++;
    return normalizeRanges(pairs, negate);
  }

  private alternation(): string {
    const alts = [this.sequence()];
    while (this.src[this.pos] === '|') {
      this.pos++;
      alts.push(this.sequence());
    }
    return alts.length === 1 ? alts[0] : `(${alts.join(' | ')})`;
  }

  private sequence(): string {
    const items: string[] = [];
    while (this.pos < this.src.length && this.src[this.pos] !== '|' && this.src[this.pos] !== ')') items.push(this.quantified(this.atom()));
    return items.length === 0 ? '""' : items.join(' ');
  }

  /** `atom` followed by its quantifier, if any (a lazy ? after one changes what is matched first, not what matches). */
  private quantified(atom: string): string {
    const q = /^(?:[*+?]|\{(\d+)(,(\d*))?\})\??/.exec(this.src.slice(this.pos));
    if (!q) return atom;
    this.pos += q[0].length;
    const op = q[0][0] === '{' ? `{${q[1]}${q[2] ?? ''}}` : q[0][0];
    return `${atom.startsWith('(') || atom.startsWith('"') || atom.startsWith('[') ? atom : `(${atom})`}${op}`;
  }

  /** One group, class, `.`, escape or literal character. */
  private atom(): string {
    const c = this.src[this.pos];
    if (c === '(') return this.group();
    if (c === '[') return contentChar(this.charClass());
    if (c === '.') {
      this.pos++;
      return contentChar(DOT);
    }
    if (c === '\\') return this.escape();
    if (c === '^' || c === '$') this.fail(`has ${c} other than at the very start or end`);
    if (c === '*' || c === '+' || c === '?' || c === '{') this.fail(`has a quantifier ${c} with nothing to repeat`);
    const cp = this.codePoint();
    return contentChar([cp, cp]);
  }

  /** `(...)` or `(?:...)`; lookaround and named groups are refused. */
  private group(): string {
    this.pos++;
    if (this.src[this.pos] === '?') {
      if (this.src[this.pos + 1] !== ':') this.fail('uses a lookaround or named group ((?...)), which is not supported');
      this.pos += 2;
    }
    const atom = `(${this.alternation()})`;
    if (this.src[this.pos] !== ')') this.fail('has an unclosed (');
    this.pos++;
    return atom;
  }

  /** A backslash outside a class: a set escape, or one character; backreferences and the like are refused. */
  private escape(): string {
    this.pos++;
    const c = this.src[this.pos];
    const set = escapeSet(c);
    if (set) {
      this.pos++;
      return contentChar(set);
    }
    if (/[1-9bBkpP]/.test(c ?? '')) this.fail(`uses \\${c} (backreferences, word boundaries and property escapes are not supported)`);
    const cp = this.escapedChar();
    return contentChar([cp, cp]);
  }
}

/**
 * A regular expression (the simple subset: literals, escapes \d \w \s and their negations, classes,
 * `.`, groups, alternation, quantifiers, ^ and $ at the ends) as GBNF over JSON string content.
 * Anything else (backreferences, lookaround, \b, flags) is refused.
 */
export function patternGrammar(pattern: string, fail: (why: string) => never): string {
  const anchoredStart = pattern.startsWith('^');
  const trailing = /(\\*)\$$/.exec(pattern);
  const anchoredEnd = trailing !== null && trailing[1].length % 2 === 0 && pattern.length > (anchoredStart ? 1 : 0);
  const src = pattern.slice(anchoredStart ? 1 : 0, anchoredEnd ? -1 : undefined);
  const body = new PatternParser(src, fail).parse();
  const any = contentChar([0, MAX_CODE_POINT]);
  // Unanchored, a pattern may match anywhere in the string (JSON schema's semantics).
  return `${anchoredStart ? '' : `${any}* `}(${body})${anchoredEnd ? '' : ` ${any}*`}`;
}
