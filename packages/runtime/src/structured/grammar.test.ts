import { describe, expect, it } from 'vitest';
import { GrammarError } from './errors.js';
import { MAX_GRAMMAR_ELEMENTS, compileGrammar } from './grammar.js';
import { GrammarMatcher, MAX_STACKS_PER_STATE } from './matcher.js';
import { StructuredOutputError } from './errors.js';

const matcher = (g: string) => new GrammarMatcher(compileGrammar(g));
const err = (g: string): GrammarError => {
  try {
    compileGrammar(g);
  } catch (e) {
    if (e instanceof GrammarError) return e;
    throw e;
  }
  throw new Error(`expected ${JSON.stringify(g)} to be refused`);
};

describe('GBNF parser', () => {
  it('compiles a text once while it is recent: the same program comes back, a refused text is refused every time', () => {
    const text = 'root ::= "x" [0-9]{2,5}';
    const g = compileGrammar(text);
    expect(compileGrammar(text)).toBe(g);
    expect(compileGrammar(`${text} "y"`)).not.toBe(g);
    expect(new GrammarMatcher(compileGrammar(text)).matches('x123')).toBe(true);
    // 40 other texts push it out; it compiles again to an equal program.
    for (let i = 0; i < 40; i++) compileGrammar(`root ::= "${i}"`);
    const again = compileGrammar(text);
    expect(again).not.toBe(g);
    expect(again).toEqual(g);
    expect(err('root ::= (').code).toBe(err('root ::= (').code);
  });

  it('parses rules, alternation, groups, repetition, literals with escapes and classes', () => {
    const m = matcher(`
      # a comment
      root ::= greeting ("," ws name)+ "!"?   # trailing comment
      greeting ::= "hi" | "hello" | "hey\\tyou"
      name ::= [A-Z] [a-z]{1,3}
      ws ::= [ \\t\\n]*
    `);
    expect(m.matches('hi,Bob')).toBe(true);
    expect(m.matches('hello, Al,\n\tBea!')).toBe(true);
    expect(m.matches('hey\tyou,Zz!')).toBe(true);
    expect(m.matches('hi,Bobby')).toBe(false); // {1,3}
    expect(m.matches('hi')).toBe(false); // + needs one
    expect(m.matches('hi,bob')).toBe(false);
  });

  it('alternatives may continue on the next line; a new rule starts at `name ::=`', () => {
    const m = matcher('root ::= a\n  | b\nb ::= "b"\na ::= "a"');
    expect(m.matches('a')).toBe(true);
    expect(m.matches('b')).toBe(true);
  });

  it('negated classes, ., hex/unicode escapes and {m,} / {,n} / {m}', () => {
    const m = matcher('root ::= "\\"" [^"\\\\]* "\\"" x{2} y{,2} z{1,} . "\\x41\\u00e9\\U0001F600"\nx ::= "x"\ny ::= "y"\nz ::= "z"');
    expect(m.matches('"a\\b"xxzz!Aé😀')).toBe(false); // a backslash inside
    expect(m.matches('"a b"xxyyzQAé😀')).toBe(true);
    expect(m.matches('"é"xxzzz\nAé😀')).toBe(true);
    expect(m.matches('""xyzQAé😀')).toBe(false); // x{2}
    expect(m.matches('""xxyyyzQAé😀')).toBe(false); // y{,2}
  });

  it('an empty alternative and nested groups', () => {
    const m = matcher('root ::= ("a" ("b" | "c")*)? | "d"');
    for (const s of ['', 'a', 'abcb', 'd']) expect(m.matches(s), s).toBe(true);
    for (const s of ['b', 'ad', 'dd']) expect(m.matches(s), s).toBe(false);
  });

  it('allows tail cycles through nullable elements ((x?)* terminates)', () => {
    const m = matcher('root ::= ("a"?)* "b"\n');
    expect(m.matches('b')).toBe(true);
    expect(m.matches('aaab')).toBe(true);
    expect(m.matches('aaa')).toBe(false);
  });

  it("parses llama.cpp's grammars/json.gbnf as published", () => {
    const m = matcher(String.raw`root   ::= object
value  ::= object | array | string | number | ("true" | "false" | "null") ws

object ::=
  "{" ws (
            string ":" ws value
    ("," ws string ":" ws value)*
  )? "}" ws

array  ::=
  "[" ws (
            value
    ("," ws value)*
  )? "]" ws

string ::=
  "\"" (
    [^"\\\x7F\x00-\x1F] |
    "\\" (["\\bfnrt] | "u" [0-9a-fA-F]{4}) # escapes
  )* "\"" ws

number ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]+)? ([eE] [-+]? [0-9] [1-9]{0,15})? ws

# Optional space: by convention, applied in this grammar after literal chars when allowed
ws ::= | " " | "\n" [ \t]{0,20}
`);
    expect(m.matches(String.raw`{"a": [1, -2.5e3, "x\u00e9\n", true, null, {}]}` + '\n')).toBe(true);
    expect(m.matches(String.raw`{"a": "\q"}`)).toBe(false);
    expect(m.matches('{"a": 1,}')).toBe(false);
  });

  const cases: Array<[string, string, string, number, number]> = [
    ['syntax: missing ::=', 'root "a"', 'IE_GRAMMAR_SYNTAX', 1, 6],
    ['syntax: stray character', 'root ::= "a" ;', 'IE_GRAMMAR_SYNTAX', 1, 14],
    ['repetition with nothing before it', 'root ::= * "a"', 'IE_GRAMMAR_SYNTAX', 1, 10],
    ['unmatched )', 'root ::= "a")', 'IE_GRAMMAR_SYNTAX', 1, 13],
    ['empty class', 'root ::= []', 'IE_GRAMMAR_SYNTAX', 1, 10],
    ['reversed range', 'root ::= [z-a]', 'IE_GRAMMAR_SYNTAX', 1, 10],
    ['unterminated string', 'root ::= "abc', 'IE_GRAMMAR_UNTERMINATED', 1, 10],
    ['unterminated class', 'root ::= [abc', 'IE_GRAMMAR_UNTERMINATED', 1, 10],
    ['unterminated group', 'root ::= ("a" | "b"', 'IE_GRAMMAR_UNTERMINATED', 1, 20],
    ['bad escape', 'root ::= "\\q"', 'IE_GRAMMAR_BAD_ESCAPE', 1, 11],
    ['short hex escape', 'root ::= "\\x4"', 'IE_GRAMMAR_BAD_ESCAPE', 1, 11],
    ['undefined rule', 'root ::= a "x"\n', 'IE_GRAMMAR_UNDEFINED_RULE', 1, 10],
    ['duplicate rule', 'root ::= "a"\nroot ::= "b"', 'IE_GRAMMAR_DUPLICATE_RULE', 2, 1],
    ['no root', 'start ::= "a"', 'IE_GRAMMAR_NO_ROOT', 1, 1],
    ['direct left recursion', 'root ::= "x" | list\nlist ::= list "," "a" | "a"', 'IE_GRAMMAR_LEFT_RECURSION', 2, 1],
    ['left recursion through a nullable prefix', 'root ::= ws? root "a" | "b"\nws ::= " "', 'IE_GRAMMAR_LEFT_RECURSION', 1, 1],
    ['indirect left recursion', 'root ::= a\na ::= b "x" | "y"\nb ::= a "z"', 'IE_GRAMMAR_LEFT_RECURSION', 2, 1],
    ['bad repetition bounds', 'root ::= "a"{3,1}', 'IE_GRAMMAR_BAD_REPETITION', 1, 13],
    ['malformed repetition', 'root ::= "a"{x}', 'IE_GRAMMAR_BAD_REPETITION', 1, 13],
    ['too large', 'root ::= ("a" "b"){2000000}', 'IE_GRAMMAR_TOO_LARGE', 1, 19],
    ['token references', 'root ::= <think> "a"', 'IE_GRAMMAR_UNSUPPORTED', 1, 10],
  ];
  for (const [what, g, code, line, column] of cases) {
    it(`refuses ${what} with ${code} at ${line}:${column}`, () => {
      const e = err(g);
      expect(e.code).toBe(code);
      expect([e.line, e.column]).toEqual([line, column]);
      expect(e.message).toMatch(new RegExp(`^grammar ${line}:${column}: `));
    });
  }

  it('names the cycle of a left-recursive rule and says how to fix it', () => {
    expect(err('root ::= root "a" | "b"').message).toContain('root -> root');
    expect(err('root ::= root "a" | "b"').message).toContain('rewrite it as a repetition');
  });

  it('lays out the program: defined rules first, helpers named after their owner, x{m,n} as a chain of optional tails, x* right-recursive', () => {
    const g = compileGrammar('root ::= "a"{1,3} b* ("c" | b)\nb ::= [x-y] | "z"');
    expect(g.ruleNames).toEqual(['root', 'b', 'root#1', 'root#2', 'root#3', 'root#4']);
    expect(g.sets.map((s) => [...s])).toEqual([
      [97, 97],
      [99, 99],
      [120, 121],
      [122, 122],
    ]);
    // Per rule its alternatives as [elements...]: set ids >= 0, references to rule r as -(r + 2).
    const alts = g.ruleAlts.map((starts) => [...starts].map((p) => [...g.code.subarray(p, g.code.indexOf(-1, p))]));
    expect(alts).toEqual([
      [[0, -5, -6, -7]], // root: "a", its optional tail, b*, the group
      [[2], [3]], // b
      [[0], []], // root#1: the last optional "a"
      [[0, -4], []], // root#2: "a" root#1 |
      [[-3, -6], []], // root#3: b root#3 |
      [[1], [-3]], // root#4: "c" | b
    ]);
    expect(g.root).toBe(0);
  });

  it('compiles a sequence as long as the element limit allows, and refuses one past it', () => {
    // {m} copies lie end to end in one alternative: laid out without spreading them as arguments.
    const g = compileGrammar(`root ::= "a"{${MAX_GRAMMAR_ELEMENTS - 8}}`);
    const m = new GrammarMatcher(g);
    expect(m.matches('a'.repeat(MAX_GRAMMAR_ELEMENTS - 8))).toBe(true);
    expect(m.matches('a'.repeat(MAX_GRAMMAR_ELEMENTS - 9))).toBe(false);
    expect(err(`root ::= "a"{${MAX_GRAMMAR_ELEMENTS + 1}}`).code).toBe('IE_GRAMMAR_TOO_LARGE');
    expect(err(`root ::= "a"{${MAX_GRAMMAR_ELEMENTS / 2}} "b"{${MAX_GRAMMAR_ELEMENTS / 2 + 1}}`).code).toBe('IE_GRAMMAR_TOO_LARGE');
  });

  it('refuses, quickly and with IE_GRAMMAR_TOO_COMPLEX, a grammar whose parse stacks multiply', () => {
    // Nested optional repetitions: after n "a"s every way of splitting n between the levels is a stack.
    const t0 = performance.now();
    let e: unknown;
    try {
      const m = new GrammarMatcher(compileGrammar('root ::= ((("a"{0,20}){0,20}){0,20}){0,20}'));
      m.stepBytes(m.initial, new TextEncoder().encode('a'.repeat(60)));
    } catch (x) {
      e = x;
    }
    expect(e).toBeInstanceOf(StructuredOutputError);
    expect((e as StructuredOutputError).code).toBe('IE_GRAMMAR_TOO_COMPLEX');
    expect((e as StructuredOutputError).message).toContain(`${MAX_STACKS_PER_STATE} parse stacks`);
    expect(performance.now() - t0).toBeLessThan(5000);
    // One level of the same shape is a small state set and matches as before.
    const m = new GrammarMatcher(compileGrammar('root ::= ("a"{0,20}){0,20}'));
    expect(m.matches('a'.repeat(400))).toBe(true);
    expect(m.matches('a'.repeat(401))).toBe(false);
  });
});
