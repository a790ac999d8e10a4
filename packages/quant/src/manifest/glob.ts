/**
 * Tensor-name patterns, matched in linear time. A manifest is input: a pattern such as
 * `^((.*)*)*x$` must not make a backtracking engine run for minutes. Globs and regexes are both
 * compiled here into a Thompson NFA and simulated state-set by state-set, so a match takes
 * O(pattern size x name length) whatever the pattern is; nothing is handed to `RegExp`.
 *
 * Globs over canonical tensor names (`blk.12.ffn_down.weight`): `*` matches within one
 * dot-separated part, `**` across parts, `?` one character other than a dot, `{a,b}` either
 * alternative (no nesting). Everything else matches itself.
 *
 * Regexes (a rule's `regex`, matched against the whole name): literals, `.`, classes `[a-z_]`
 * `[^.]`, the escapes `\d \w \s \D \W \S` and escaped punctuation, groups `(...)` `(?:...)`,
 * alternation `|`, quantifiers `* + ? {m} {m,} {m,n}` (n ≤ 1000; a lazy `?` after one changes
 * nothing for a whole-name match), and `^` / `$` at the ends. Backreferences, lookaround, word
 * boundaries and Unicode property escapes are refused: they have no linear-time match.
 */

/** A compiled pattern: whether a whole tensor name matches. */
export interface NamePattern {
  readonly source: string;
  test(name: string): boolean;
}

/** A pattern outside the supported syntax; `at` is the character offset in the pattern. */
export class PatternSyntaxError extends Error {
  override readonly name = 'PatternSyntaxError';
  constructor(
    message: string,
    readonly at: number,
  ) {
    super(message);
  }
}

type CharTest = (c: string) => boolean;
type Node =
  | { k: 'char'; test: CharTest }
  | { k: 'cat'; items: Node[] }
  | { k: 'alt'; items: Node[] }
  | { k: 'rep'; node: Node; min: number; max: number };

const MAX_PATTERN = 4096;
const MAX_STATES = 20000;
const MAX_COUNT = 1000;
const ANY: CharTest = () => true;
const NOT_DOT: CharTest = (c) => c !== '.';
const lit = (ch: string): Node => ({ k: 'char', test: (c) => c === ch });

// ---- the NFA --------------------------------------------------------------------------------

/** State i: `test[i]` set → consumes one character matching it and goes to `out[i][0]`; else epsilon moves to every `out[i]` (none: accept). */
class Nfa {
  readonly test: Array<CharTest | null> = [];
  readonly out: number[][] = [];
  add(test: CharTest | null, out: number[]): number {
    if (this.test.length >= MAX_STATES)
      throw new PatternSyntaxError(`compiles to more than ${MAX_STATES} states; simplify it (fewer or smaller counted repetitions)`, 0);
    this.test.push(test);
    this.out.push(out);
    return this.test.length - 1;
  }
  /** Compiles `n` to run before state `next`; returns its start state. */
  compile(n: Node, next: number): number {
    switch (n.k) {
      case 'char':
        return this.add(n.test, [next]);
      case 'cat': {
        let s = next;
        for (let i = n.items.length - 1; i >= 0; i--) s = this.compile(n.items[i], s);
        return s;
      }
      case 'alt': {
        const split = this.add(null, []);
        this.out[split] = n.items.map((x) => this.compile(x, next));
        return split;
      }
      case 'rep': {
        let s = next;
        if (n.max < 0) {
          const loop = this.add(null, []);
          this.out[loop] = [this.compile(n.node, loop), next];
          s = loop;
        } else {
          for (let i = n.min; i < n.max; i++) {
            const opt = this.add(null, []);
            this.out[opt] = [this.compile(n.node, s), next];
            s = opt;
          }
        }
        for (let i = 0; i < n.min; i++) s = this.compile(n.node, s);
        return s;
      }
    }
  }
}

function matcher(source: string, root: Node): NamePattern {
  const nfa = new Nfa();
  const accept = nfa.add(null, []);
  const start = nfa.compile(root, accept);
  const n = nfa.test.length;
  const mark = new Int32Array(n).fill(-1);
  let gen = 0;
  /** Adds `s` and its epsilon closure to `into` (states that consume or accept). */
  const close = (s: number, into: number[]) => {
    const stack = [s];
    while (stack.length) {
      const x = stack.pop() as number;
      if (mark[x] === gen) continue;
      mark[x] = gen;
      if (nfa.test[x] !== null || x === accept) into.push(x);
      else for (let i = nfa.out[x].length - 1; i >= 0; i--) stack.push(nfa.out[x][i]);
    }
  };
  return {
    source,
    test(name: string): boolean {
      gen++;
      let cur: number[] = [];
      close(start, cur);
      for (const ch of name) {
        if (cur.length === 0) return false;
        gen++;
        const next: number[] = [];
        for (const s of cur) if (s !== accept && (nfa.test[s] as CharTest)(ch)) close(nfa.out[s][0], next);
        cur = next;
      }
      return cur.includes(accept);
    },
  };
}

// ---- globs ----------------------------------------------------------------------------------

function parseGlob(glob: string): Node {
  if (glob.length > MAX_PATTERN) throw new PatternSyntaxError(`is ${glob.length} characters, more than ${MAX_PATTERN}`, MAX_PATTERN);
  const top: Node[] = [];
  let alts: Node[][] | null = null;
  let seq = top;
  for (let i = 0; i < glob.length; i++) {
    const ch = glob[i];
    if (ch === '*') {
      if (glob[i + 1] === '*') {
        seq.push({ k: 'rep', node: { k: 'char', test: ANY }, min: 0, max: -1 });
        i++;
      } else seq.push({ k: 'rep', node: { k: 'char', test: NOT_DOT }, min: 0, max: -1 });
    } else if (ch === '?') seq.push({ k: 'char', test: NOT_DOT });
    else if (ch === '{') {
      if (alts) throw new PatternSyntaxError(`nested "{" at ${i}: alternatives do not nest`, i);
      seq = [];
      alts = [seq];
    } else if (ch === '}') {
      if (!alts) throw new PatternSyntaxError(`"}" at ${i} without "{"`, i);
      top.push({ k: 'alt', items: alts.map((items) => ({ k: 'cat', items })) });
      alts = null;
      seq = top;
    } else if (ch === ',' && alts) {
      seq = [];
      alts.push(seq);
    } else seq.push(lit(ch));
  }
  if (alts) throw new PatternSyntaxError('has an unclosed "{"', glob.length);
  return { k: 'cat', items: top };
}

/** Compiles a glob (see the module comment) into a linear-time matcher; throws PatternSyntaxError. */
export function compileGlob(glob: string): NamePattern {
  return matcher(glob, parseGlob(glob));
}

/** @deprecated The old name of {@link compileGlob}; it no longer returns a RegExp. */
export const globToRegExp = compileGlob;

/** Whether a pattern can only ever match itself (a literal tensor name). */
export function isLiteralGlob(glob: string): boolean {
  return !/[*?{]/.test(glob);
}

// ---- regexes --------------------------------------------------------------------------------

const DIGIT: CharTest = (c) => c >= '0' && c <= '9';
const WORD: CharTest = (c) => /^[A-Za-z0-9_]$/.test(c);
const SPACE: CharTest = (c) => /^\s$/u.test(c);
const not =
  (t: CharTest): CharTest =>
  (c) =>
    !t(c);

class RegexParser {
  i = 0;
  constructor(readonly s: string) {}
  fail(message: string, at = this.i): never {
    throw new PatternSyntaxError(`${message} (at character ${at})`, at);
  }
  peek(): string | undefined {
    return this.s[this.i];
  }
  parse(): Node {
    if (this.peek() === '^') this.i++;
    const n = this.alt();
    if (this.i < this.s.length) this.fail(this.peek() === ')' ? 'has an unmatched ")"' : `has "${this.peek()}" where it cannot be`);
    return n;
  }
  alt(): Node {
    const items = [this.seq()];
    while (this.peek() === '|') {
      this.i++;
      items.push(this.seq());
    }
    return items.length === 1 ? items[0] : { k: 'alt', items };
  }
  seq(): Node {
    const items: Node[] = [];
    for (;;) {
      const c = this.peek();
      if (c === undefined || c === '|' || c === ')') break;
      if (c === '$') {
        this.i++;
        const after = this.peek();
        if (after !== undefined && after !== '|' && after !== ')') this.fail('has "$" before its end; patterns match whole names');
        continue;
      }
      if (c === '^') this.fail('has "^" after its start; patterns match whole names');
      const atom = this.atom();
      items.push(this.quantified(atom));
    }
    return items.length === 1 ? items[0] : { k: 'cat', items };
  }
  quantified(atom: Node): Node {
    const c = this.peek();
    const at = this.i;
    let min: number;
    let max: number;
    const counted = /^\{(\d+)(,(\d*))?\}/.exec(this.s.slice(this.i));
    if (c === '*') [min, max] = [0, -1];
    else if (c === '+') [min, max] = [1, -1];
    else if (c === '?') [min, max] = [0, 1];
    else if (counted) {
      min = Number(counted[1]);
      max = counted[2] === undefined ? min : counted[3] === '' ? -1 : Number(counted[3]);
      if (min > MAX_COUNT || max > MAX_COUNT) this.fail(`counts a repetition past ${MAX_COUNT}`, at);
      if (max >= 0 && max < min) this.fail(`has the repetition {${min},${max}} out of order`, at);
      this.i += counted[0].length - 1;
    } else return atom;
    this.i++;
    if (this.peek() === '?') this.i++; // lazy: the same set of whole-name matches
    const after = this.peek();
    if (after === '*' || after === '+' || after === '?' || (after === '{' && /^\{\d/.test(this.s.slice(this.i))))
      this.fail('has two quantifiers in a row', this.i);
    return { k: 'rep', node: atom, min, max };
  }
  atom(): Node {
    const c = this.s[this.i++];
    if (c === '.') return { k: 'char', test: (x) => x !== '\n' && x !== '\r' && x !== '\u2028' && x !== '\u2029' };
    if (c === '(') {
      const at = this.i - 1;
      if (this.peek() === '?') {
        if (this.s[this.i + 1] === ':') this.i += 2;
        else if (this.s[this.i + 1] === '<' && /^\?<[A-Za-z_$][\w$]*>/.test(this.s.slice(this.i))) this.i = this.s.indexOf('>', this.i) + 1;
        else this.fail('has a lookaround or group flag; only (...) and (?:...) groups are supported', at);
      }
      const inner = this.alt();
      if (this.peek() !== ')') this.fail('has an unclosed "("', at);
      this.i++;
      return inner;
    }
    if (c === '[') return this.cls();
    if (c === '\\') return { k: 'char', test: this.escape(false) };
    if (c === '*' || c === '+' || c === '?' || c === '{') this.fail(`has "${c}" with nothing to repeat`, this.i - 1);
    if (c === ']' || c === '}') return lit(c);
    // A whole code point (the 'u' flag's view of the name).
    const cp = this.s.codePointAt(this.i - 1) as number;
    if (cp > 0xffff) this.i++;
    return lit(String.fromCodePoint(cp));
  }
  escape(inClass: boolean): CharTest {
    const at = this.i - 1;
    const e = this.s[this.i++];
    if (e === undefined) this.fail('ends with "\\"', at);
    switch (e) {
      case 'd':
        return DIGIT;
      case 'D':
        return not(DIGIT);
      case 'w':
        return WORD;
      case 'W':
        return not(WORD);
      case 's':
        return SPACE;
      case 'S':
        return not(SPACE);
      case 'n':
        return (x) => x === '\n';
      case 't':
        return (x) => x === '\t';
    }
    if (/[\\^$.|?*+()[\]{}/-]/.test(e)) return (x) => x === e;
    if (/[1-9]/.test(e) || e === 'k') this.fail('has a backreference; they have no linear-time match', at);
    if (!inClass && (e === 'b' || e === 'B')) this.fail('has a word boundary; patterns match whole names', at);
    return this.fail(`has the escape "\\${e}", which tensor patterns do not support`, at);
  }
  cls(): Node {
    const at = this.i - 1;
    const negate = this.peek() === '^';
    if (negate) this.i++;
    const tests: CharTest[] = [];
    let first = true;
    for (;;) {
      const c = this.s[this.i++];
      if (c === undefined) this.fail('has an unclosed "["', at);
      if (c === ']' && !first) break;
      first = false;
      let lo: string | null = null;
      if (c === '\\') {
        const t = this.escape(true);
        const e = this.s[this.i - 1];
        if (/[dDwWsS]/.test(e)) {
          tests.push(t);
          continue;
        }
        lo = e === 'n' ? '\n' : e === 't' ? '\t' : e;
      } else lo = c;
      if (this.peek() === '-' && this.s[this.i + 1] !== undefined && this.s[this.i + 1] !== ']') {
        this.i++;
        let hi = this.s[this.i++];
        if (hi === '\\') {
          this.escape(true);
          hi = this.s[this.i - 1];
        }
        if (hi < lo) this.fail(`has the range ${lo}-${hi} out of order`, at);
        const [a, b] = [lo, hi];
        tests.push((x) => x >= a && x <= b);
      } else {
        const v = lo;
        tests.push((x) => x === v);
      }
    }
    const any: CharTest = (x) => tests.some((t) => t(x));
    return { k: 'char', test: negate ? not(any) : any };
  }
}

/** Compiles a rule's `regex` (see the module comment) into a linear-time whole-name matcher; throws PatternSyntaxError. */
export function compileRegex(source: string): NamePattern {
  if (source.length > MAX_PATTERN) throw new PatternSyntaxError(`is ${source.length} characters, more than ${MAX_PATTERN}`, MAX_PATTERN);
  return matcher(source, new RegexParser(source).parse());
}
