/**
 * GBNF (llama.cpp's grammar format) parsed and compiled to a flat program the matcher walks:
 *
 *   root  ::= "{" ws pair ("," ws pair)* "}"     # rules; `root` is where matching starts
 *   pair  ::= [a-z]+ ":" ws ("yes" | "no")       # literals, classes, groups, alternation
 *   ws    ::= [ \t\n]{0,8}                       # * + ? {m} {m,} {m,n} {,n}; [^...]; .
 *
 * Groups and repetitions become helper rules (x* is `h ::= x h |`, right-recursive so the matcher's
 * stacks stay bounded), every rule becomes alternatives of flat sequences of character sets and
 * rule references, and left recursion is refused here, because a top-down matcher would never
 * stop expanding it.
 */
import { GrammarError, type StructuredErrorCode } from './errors.js';
import { pushAll } from '../arrays.js';

/** The largest code point. */
export const MAX_CODE_POINT = 0x10ffff;
/** Elements a grammar may expand to (x{0,100000} of a group would otherwise eat memory). */
export const MAX_GRAMMAR_ELEMENTS = 1 << 16;

/** End of an alternative in {@link CompiledGrammar.code}. */
export const END = -1;
/** A reference to rule r is stored as -(r + 2); a character set as its id (>= 0). */
export const refCode = (rule: number) => -(rule + 2);
export const refRule = (code: number) => -code - 2;

export interface CompiledGrammar {
  /** Rule names by index; helper rules are named after their owner (`value#2`). */
  readonly ruleNames: readonly string[];
  /** Per rule, the positions in `code` where its alternatives start. */
  readonly ruleAlts: readonly Int32Array[];
  /** Alternatives laid end to end: set ids (>= 0), rule references (< -1), END (-1) after each. */
  readonly code: Int32Array;
  /** Character sets as sorted, disjoint, inclusive [lo, hi] code-point pairs. */
  readonly sets: readonly Int32Array[];
  readonly root: number;
}

type Node =
  | { t: 'chars'; ranges: number[] }
  | { t: 'ref'; name: string; at: number }
  | { t: 'seq'; items: Node[] }
  | { t: 'alt'; alts: Node[] }
  | { t: 'rep'; node: Node; min: number; max: number };

/** Sorted, merged ranges; `negate` takes the complement within 0..MAX_CODE_POINT. */
export function normalizeRanges(pairs: number[], negate = false): number[] {
  const list: Array<[number, number]> = [];
  for (let i = 0; i < pairs.length; i += 2) list.push([pairs[i], pairs[i + 1]]);
  list.sort((a, b) => a[0] - b[0]);
  const merged: number[] = [];
  for (const [lo, hi] of list) {
    const n = merged.length;
    if (n > 0 && lo <= merged[n - 1] + 1) merged[n - 1] = Math.max(merged[n - 1], hi);
    else merged.push(lo, hi);
  }
  if (!negate) return merged;
  const out: number[] = [];
  let next = 0;
  for (let i = 0; i < merged.length; i += 2) {
    if (merged[i] > next) out.push(next, merged[i] - 1);
    next = merged[i + 1] + 1;
  }
  if (next <= MAX_CODE_POINT) out.push(next, MAX_CODE_POINT);
  return out;
}

const isNameChar = (c: string | undefined) => c !== undefined && /[A-Za-z0-9_-]/.test(c);

class Parser {
  pos = 0;
  constructor(readonly text: string) {}

  fail(code: StructuredErrorCode, message: string, at = this.pos): never {
    throw GrammarError.at(code, this.text, at, message);
  }

  /** Skips spaces, newlines and # comments (newlines do not end a rule: the next `name ::=` does). */
  skip(): void {
    const s = this.text;
    while (this.pos < s.length) {
      const c = s[this.pos];
      if (c === ' ' || c === '\t' || c === '\n' || c === '\r') this.pos++;
      else if (c === '#') while (this.pos < s.length && s[this.pos] !== '\n') this.pos++;
      else break;
    }
  }

  name(): string {
    const start = this.pos;
    while (isNameChar(this.text[this.pos])) this.pos++;
    if (this.pos === start) this.fail('IE_GRAMMAR_SYNTAX', `expected a rule name, found ${this.found()}`);
    return this.text.slice(start, this.pos);
  }

  found(): string {
    return this.pos >= this.text.length
      ? 'the end of the grammar'
      : JSON.stringify(String.fromCodePoint(this.text.codePointAt(this.pos) ?? 0));
  }

  /** Whether a rule definition (`name ::=`) starts here; leaves pos unchanged. */
  atDefinition(): boolean {
    const save = this.pos;
    while (isNameChar(this.text[this.pos])) this.pos++;
    const named = this.pos > save;
    this.skip();
    const yes = named && this.text.startsWith('::=', this.pos);
    this.pos = save;
    return yes;
  }

  parse(): Map<string, { node: Node; at: number }> {
    const rules = new Map<string, { node: Node; at: number }>();
    for (;;) {
      this.skip();
      if (this.pos >= this.text.length) break;
      const at = this.pos;
      const name = this.name();
      this.skip();
      if (!this.text.startsWith('::=', this.pos))
        this.fail('IE_GRAMMAR_SYNTAX', `expected "::=" after rule name ${name}, found ${this.found()}`);
      this.pos += 3;
      const node = this.alternates(false);
      if (this.pos < this.text.length && this.text[this.pos] === ')') this.fail('IE_GRAMMAR_SYNTAX', 'unmatched ")"');
      if (rules.has(name)) this.fail('IE_GRAMMAR_DUPLICATE_RULE', `rule ${name} is defined twice; merge its alternatives with |`, at);
      rules.set(name, { node, at });
    }
    return rules;
  }

  alternates(nested: boolean): Node {
    const alts = [this.sequence(nested)];
    while (this.text[this.pos] === '|') {
      this.pos++;
      alts.push(this.sequence(nested));
    }
    return alts.length === 1 ? alts[0] : { t: 'alt', alts };
  }

  sequence(nested: boolean): Node {
    const items: Node[] = [];
    for (;;) {
      this.skip();
      const c = this.text[this.pos];
      if (c === undefined || c === '|' || c === ')') break;
      let atom: Node;
      const at = this.pos;
      if (isNameChar(c)) {
        if (!nested && this.atDefinition()) break;
        atom = { t: 'ref', name: this.name(), at };
      } else if (c === '"') atom = this.literal();
      else if (c === '[') atom = this.charClass();
      else if (c === '.') {
        this.pos++;
        atom = { t: 'chars', ranges: [0, MAX_CODE_POINT] };
      } else if (c === '(') {
        this.pos++;
        atom = this.alternates(true);
        this.skip();
        if (this.text[this.pos] !== ')') this.fail('IE_GRAMMAR_UNTERMINATED', `the group opened at offset ${at} is not closed with ")"`);
        this.pos++;
      } else if (c === '<') {
        this.fail('IE_GRAMMAR_UNSUPPORTED', 'token references (<...>, <[id]>) are not supported; spell the text as a string literal');
      } else if (c === '*' || c === '+' || c === '?' || c === '{') {
        this.fail('IE_GRAMMAR_SYNTAX', `repetition ${JSON.stringify(c)} has nothing before it to repeat`);
      } else {
        this.fail('IE_GRAMMAR_SYNTAX', `unexpected ${this.found()}; expected a rule name, "literal", [class], ., ( or |`);
      }
      items.push(this.postfix(atom));
    }
    return items.length === 1 ? items[0] : { t: 'seq', items };
  }

  postfix(base: Node): Node {
    let atom = base;
    for (;;) {
      const save = this.pos;
      // Spaces (not newlines) may separate an atom from its repetition operator.
      while (this.text[this.pos] === ' ' || this.text[this.pos] === '\t') this.pos++;
      const c = this.text[this.pos];
      if (c === '*' || c === '+' || c === '?') {
        this.pos++;
        atom = { t: 'rep', node: atom, min: c === '+' ? 1 : 0, max: c === '?' ? 1 : Number.POSITIVE_INFINITY };
      } else if (c === '{') {
        const at = this.pos;
        const m = /^\{\s*(\d*)\s*(?:(,)\s*(\d*)\s*)?\}/.exec(this.text.slice(this.pos, this.pos + 40));
        if (!m || (m[1] === '' && m[3] === undefined))
          this.fail('IE_GRAMMAR_BAD_REPETITION', 'expected {m}, {m,}, {m,n} or {,n} with decimal counts');
        const min = m[1] === '' ? 0 : Number(m[1]);
        const max = m[2] === undefined ? min : m[3] === '' || m[3] === undefined ? Number.POSITIVE_INFINITY : Number(m[3]);
        if (max < min) this.fail('IE_GRAMMAR_BAD_REPETITION', `{${min},${max}}: the maximum is below the minimum`, at);
        if (min > MAX_GRAMMAR_ELEMENTS || (max !== Number.POSITIVE_INFINITY && max > MAX_GRAMMAR_ELEMENTS))
          this.fail('IE_GRAMMAR_TOO_LARGE', `{${m[1]},${m[3] ?? ''}}: counts above ${MAX_GRAMMAR_ELEMENTS} are not supported`, at);
        this.pos += m[0].length;
        atom = { t: 'rep', node: atom, min, max };
      } else {
        this.pos = save;
        return atom;
      }
    }
  }

  /** One character of a literal or class, escapes decoded; returns its code point. */
  char(inClass: boolean): number {
    const s = this.text;
    const start = this.pos;
    if (this.pos >= s.length)
      this.fail('IE_GRAMMAR_UNTERMINATED', inClass ? 'character class not closed with "]"' : "string literal not closed with '\"'");
    if (s[this.pos] !== '\\') {
      const cp = s.codePointAt(this.pos) as number;
      this.pos += cp > 0xffff ? 2 : 1;
      return cp;
    }
    const e = s[this.pos + 1];
    this.pos += 2;
    const hex = (n: number) => {
      const h = s.slice(this.pos, this.pos + n);
      if (h.length !== n || !/^[0-9A-Fa-f]+$/.test(h)) this.fail('IE_GRAMMAR_BAD_ESCAPE', `\\${e} needs exactly ${n} hex digits`, start);
      this.pos += n;
      const v = Number.parseInt(h, 16);
      if (v > MAX_CODE_POINT) this.fail('IE_GRAMMAR_BAD_ESCAPE', `\\${e}${h} is above U+10FFFF`, start);
      return v;
    };
    switch (e) {
      case 'n':
        return 10;
      case 'r':
        return 13;
      case 't':
        return 9;
      case 'x':
        return hex(2);
      case 'u':
        return hex(4);
      case 'U':
        return hex(8);
      case '\\':
      case '"':
      case "'":
      case '[':
      case ']':
      case '-':
      case '^':
      case '/':
        return e.codePointAt(0) as number;
      default:
        this.fail(
          'IE_GRAMMAR_BAD_ESCAPE',
          `unknown escape \\${e ?? ''}; use \\n \\r \\t \\\\ \\" \\' \\[ \\] \\- \\^ \\xHH \\uHHHH or \\UHHHHHHHH`,
          start,
        );
    }
  }

  literal(): Node {
    const at = this.pos;
    this.pos++;
    const items: Node[] = [];
    while (this.text[this.pos] !== '"') {
      if (this.pos >= this.text.length) this.fail('IE_GRAMMAR_UNTERMINATED', "string literal not closed with '\"'", at);
      const cp = this.char(false);
      items.push({ t: 'chars', ranges: [cp, cp] });
    }
    this.pos++;
    return items.length === 1 ? items[0] : { t: 'seq', items };
  }

  charClass(): Node {
    const at = this.pos;
    this.pos++;
    const negate = this.text[this.pos] === '^';
    if (negate) this.pos++;
    const pairs: number[] = [];
    while (this.text[this.pos] !== ']') {
      if (this.pos >= this.text.length) this.fail('IE_GRAMMAR_UNTERMINATED', 'character class not closed with "]"', at);
      const lo = this.char(true);
      let hi = lo;
      if (this.text[this.pos] === '-' && this.text[this.pos + 1] !== ']' && this.pos + 1 < this.text.length) {
        this.pos++;
        hi = this.char(true);
        if (hi < lo) this.fail('IE_GRAMMAR_SYNTAX', `character range is reversed (U+${lo.toString(16)} > U+${hi.toString(16)})`, at);
      }
      pairs.push(lo, hi);
    }
    this.pos++;
    if (pairs.length === 0 && !negate) this.fail('IE_GRAMMAR_SYNTAX', 'empty character class [] matches nothing', at);
    return { t: 'chars', ranges: normalizeRanges(pairs, negate) };
  }
}

/**
 * Turns parsed rules into the flat program: every node becomes sequences of set ids and rule
 * references, groups and repetitions become helper rules appended after the defined ones.
 */
class ProgramBuilder {
  /** Rule names by index: the defined rules first, in definition order, then helpers. */
  readonly names: string[] = [];
  /** Per rule, its alternatives as flat sequences. */
  readonly alts: number[][][] = [];
  readonly index = new Map<string, number>();
  readonly sets: Int32Array[] = [];
  private readonly setIds = new Map<string, number>();
  /** Helper rules made so far per owner, for their names (`value#2`). */
  private readonly helpers = new Map<string, number>();
  private elements = 0;

  constructor(
    private readonly text: string,
    ruleNames: Iterable<string>,
  ) {
    for (const name of ruleNames) {
      this.index.set(name, this.names.length);
      this.names.push(name);
      this.alts.push([]);
    }
  }

  /** Compiles a defined rule's body; a top-level alternation is the rule's own alternatives. */
  define(name: string, node: Node): void {
    const r = this.index.get(name) as number;
    this.alts[r] = node.t === 'alt' ? node.alts.map((a) => this.flat(r, a)) : [this.flat(r, node)];
  }

  /** Counts `n` more elements, refusing a grammar that expands past MAX_GRAMMAR_ELEMENTS. */
  private grow(n: number, at: number): void {
    this.elements += n;
    if (this.elements > MAX_GRAMMAR_ELEMENTS)
      throw GrammarError.at('IE_GRAMMAR_TOO_LARGE', this.text, at, `the grammar expands to more than ${MAX_GRAMMAR_ELEMENTS} elements`);
  }

  /** The id of a character set, the same id for the same ranges. */
  private setOf(ranges: number[]): number {
    const key = ranges.join(',');
    let id = this.setIds.get(key);
    if (id === undefined) {
      id = this.sets.length;
      this.sets.push(Int32Array.from(ranges));
      this.setIds.set(key, id);
    }
    return id;
  }

  /** A new helper rule of `owner` with alternatives `body`; returns its index. */
  private helper(owner: number, body: number[][]): number {
    const r = this.names.length;
    const n = (this.helpers.get(this.names[owner]) ?? 0) + 1;
    this.helpers.set(this.names[owner], n);
    this.names.push(`${this.names[owner].split('#')[0]}#${n}`);
    this.alts.push(body);
    return r;
  }

  /** One element standing for `node`: a set, a reference, or a helper rule holding it. */
  private atom(owner: number, node: Node): number {
    if (node.t === 'chars') return this.setOf(node.ranges);
    const seqs = node.t === 'alt' ? node.alts.map((a) => this.flat(owner, a)) : [this.flat(owner, node)];
    if (seqs.length === 1 && seqs[0].length === 1) return seqs[0][0];
    return refCode(this.helper(owner, seqs));
  }

  /** `node` as a flat sequence of elements, helper rules made for what is not flat. */
  private flat(owner: number, node: Node): number[] {
    switch (node.t) {
      case 'chars':
        this.grow(1, 0);
        return [this.setOf(node.ranges)];
      case 'ref': {
        const r = this.index.get(node.name);
        if (r === undefined)
          throw GrammarError.at('IE_GRAMMAR_UNDEFINED_RULE', this.text, node.at, `rule ${node.name} is used but not defined`);
        this.grow(1, node.at);
        return [refCode(r)];
      }
      case 'seq':
        return node.items.flatMap((n) => this.flat(owner, n));
      case 'alt': {
        this.grow(1, 0);
        const seqs = node.alts.map((a) => this.flat(owner, a));
        return [refCode(this.helper(owner, seqs))];
      }
      case 'rep':
        return this.repetition(owner, node);
    }
  }

  /** x{min,max}: `min` copies of the element, then an optional tail (x* as a right-recursive helper). */
  private repetition(owner: number, node: Extract<Node, { t: 'rep' }>): number[] {
    const e = this.atom(owner, node.node);
    const out: number[] = [];
    this.grow(node.min + (Number.isFinite(node.max) ? node.max - node.min : 1), 0);
    for (let i = 0; i < node.min; i++) out.push(e);
    if (node.max === Number.POSITIVE_INFINITY) {
      // h ::= e h | (empty): right recursion, a tail call for the matcher.
      const h = this.helper(owner, []);
      this.alts[h].push([e, refCode(h)], []);
      out.push(refCode(h));
    } else if (node.max > node.min) {
      // (e (e (e)?)?)?: each optional tail its own rule, so the size stays linear in n - m.
      let tail = -1;
      for (let k = node.max - node.min; k > 0; k--) tail = this.helper(owner, [tail < 0 ? [e] : [e, refCode(tail)], []]);
      out.push(refCode(tail));
    }
    return out;
  }

  /** The program: the alternatives laid out end to end, each followed by END. */
  build(): CompiledGrammar {
    const code: number[] = [];
    const ruleAlts = this.alts.map((seqs) =>
      Int32Array.from(
        seqs.map((seq) => {
          const start = code.length;
          pushAll(code, seq);
          code.push(END);
          return start;
        }),
      ),
    );
    return { ruleNames: this.names, ruleAlts, code: Int32Array.from(code), sets: this.sets, root: this.index.get('root') as number };
  }
}

/** Grammars compiled lately, by their text: a server checks a request's schema before it queues and the constraint compiles it again, and clients send the same few schemas. */
const recentlyCompiled = new Map<string, CompiledGrammar>();
const RECENTLY_COMPILED = 32;

/**
 * Parses and compiles GBNF text; throws {@link GrammarError} with a stable code and the line:column
 * at fault. The result is shared (kept for the next call with the same text) and never changed.
 */
export function compileGrammar(text: string): CompiledGrammar {
  const known = recentlyCompiled.get(text);
  if (known) {
    recentlyCompiled.delete(text);
    recentlyCompiled.set(text, known);
    return known;
  }
  const g = compileGrammarText(text);
  if (recentlyCompiled.size >= RECENTLY_COMPILED) recentlyCompiled.delete(recentlyCompiled.keys().next().value as string);
  recentlyCompiled.set(text, g);
  return g;
}

function compileGrammarText(text: string): CompiledGrammar {
  const defs = new Parser(text).parse();
  if (!defs.has('root')) throw GrammarError.at('IE_GRAMMAR_NO_ROOT', text, 0, 'no rule named root; matching starts at root ::= ...');
  const builder = new ProgramBuilder(text, defs.keys());
  for (const [name, { node }] of defs) builder.define(name, node);
  const g = builder.build();
  checkLeftRecursion(g, text, defs);
  return g;
}

/** Rules that can match the empty string. */
export function nullableRules(g: CompiledGrammar): Uint8Array {
  const nullable = new Uint8Array(g.ruleNames.length);
  for (let changed = true; changed; ) {
    changed = false;
    g.ruleAlts.forEach((starts, r) => {
      if (nullable[r]) return;
      for (const s of starts) {
        let p = s;
        while (g.code[p] < END && nullable[refRule(g.code[p])]) p++;
        if (g.code[p] === END) {
          nullable[r] = 1;
          changed = true;
          return;
        }
      }
    });
  }
  return nullable;
}

/**
 * Refuses left recursion that grows the stack: a cycle of references, each preceded only by
 * nullable elements, where at least one reference is not the last element of its alternative.
 * Cycles of tail references only (`h ::= e h |` with a nullable `e`, from `(x?)*`) revisit the
 * same stack and the matcher's closure handles them, so they are allowed.
 */
function checkLeftRecursion(g: CompiledGrammar, text: string, defs: Map<string, { at: number }>): void {
  const nullable = nullableRules(g);
  const n = g.ruleNames.length;
  const edges: number[][] = [];
  const growing: Array<[number, number]> = [];
  for (let r = 0; r < n; r++) {
    const out = new Set<number>();
    for (const s of g.ruleAlts[r]) {
      for (let p = s; g.code[p] < END; p++) {
        const t = refRule(g.code[p]);
        out.add(t);
        if (g.code[p + 1] !== END) growing.push([r, t]);
        if (!nullable[t]) break;
      }
    }
    edges.push([...out]);
  }
  if (growing.length === 0) return;
  // Tarjan's strongly connected components, iteratively (helper chains can be 10^5 rules long).
  const idx = new Int32Array(n).fill(-1);
  const low = new Int32Array(n);
  const comp = new Int32Array(n).fill(-1);
  const onStack = new Uint8Array(n);
  const stack: number[] = [];
  let counter = 0;
  let comps = 0;
  for (let root = 0; root < n; root++) {
    if (idx[root] >= 0) continue;
    const work: Array<[number, number]> = [[root, 0]];
    idx[root] = low[root] = counter++;
    stack.push(root);
    onStack[root] = 1;
    while (work.length > 0) {
      const top = work[work.length - 1];
      const [v, i] = top;
      if (i < edges[v].length) {
        top[1]++;
        const w = edges[v][i];
        if (idx[w] < 0) {
          idx[w] = low[w] = counter++;
          stack.push(w);
          onStack[w] = 1;
          work.push([w, 0]);
        } else if (onStack[w]) low[v] = Math.min(low[v], idx[w]);
        continue;
      }
      work.pop();
      if (work.length > 0) {
        const u = work[work.length - 1][0];
        low[u] = Math.min(low[u], low[v]);
      }
      if (low[v] === idx[v]) {
        for (;;) {
          const w = stack.pop() as number;
          onStack[w] = 0;
          comp[w] = comps;
          if (w === v) break;
        }
        comps++;
      }
    }
  }
  for (const [r, t] of growing) {
    if (comp[r] !== comp[t]) continue;
    const owner = g.ruleNames[r].split('#')[0];
    const cycle = r === t ? `${g.ruleNames[r]} -> ${g.ruleNames[r]}` : `${g.ruleNames[r]} -> ${g.ruleNames[t]} -> ... -> ${g.ruleNames[r]}`;
    throw GrammarError.at(
      'IE_GRAMMAR_LEFT_RECURSION',
      text,
      defs.get(owner)?.at ?? 0,
      `rule ${owner} is left-recursive (${cycle} without consuming a character); rewrite it as a repetition, e.g. list ::= item ("," item)*`,
    );
  }
}
