import { describe, expect, it } from 'vitest';
import { compileGrammar } from './grammar.js';
import { GrammarMatcher } from './matcher.js';
import { patternGrammar } from './pattern.js';

const refuse = (why: string): never => {
  throw new Error(why);
};
/** The pattern's grammar as a matcher over JSON string content (the text between the quotes). */
const matcher = (pattern: string) => new GrammarMatcher(compileGrammar(`root ::= ${patternGrammar(pattern, refuse)}`));

describe('pattern -> GBNF over JSON string content', () => {
  it('compiles literals, \\x and \\u escapes and escaped punctuation to exact classes and JSON escapes', () => {
    expect(patternGrammar('^\\x41\\u00e9"\\\\$', refuse)).toBe('([\\x41] [\\xe9] "\\\\\\"" "\\\\\\\\")');
    expect(patternGrammar('^a\\d?$', refuse)).toBe('([\\x61] [\\x30-\\x39]?)');
  });

  it('classes: a leading ] is a member, negation, set escapes and a literal - ; groups, alternation and {m,n}', () => {
    const m = matcher('^a[^]b]\\d?$');
    for (const t of ['ax', 'ax7', 'a\\"', 'a\\n']) expect(m.matches(t), t).toBe(true);
    for (const t of ['a]', 'ab', 'a', 'ax77']) expect(m.matches(t), t).toBe(false);
    const w = matcher('^[\\w-]+$');
    expect(['a-b_9', '-'].map((t) => w.matches(t))).toEqual([true, true]);
    expect(['', 'a b', 'é'].map((t) => w.matches(t))).toEqual([false, false, false]);
    const g = matcher('^(?:x|y){2,3}.$');
    expect(['xyz', 'yyx!', 'xy\\t'].map((t) => g.matches(t))).toEqual([true, true, true]);
    expect(['xz', 'xyyx!', 'xy\\n'].map((t) => g.matches(t))).toEqual([false, false, false]);
  });

  it('unanchored, a pattern matches anywhere in the string', () => {
    const m = matcher('b+');
    expect(['b', 'abbc', 'xb'].map((t) => m.matches(t))).toEqual([true, true, true]);
    expect(['', 'ac'].map((t) => m.matches(t))).toEqual([false, false]);
  });

  const refusals: Array<[string, string]> = [
    ['\\x4', '\\x needs 2 hex digits'],
    ['\\', 'ends in a lone backslash'],
    ['\\q', 'uses \\q, which is not in the supported subset (\\d \\w \\s \\D \\W \\S, \\n \\t \\r, \\xHH, \\uHHHH, escaped punctuation)'],
    ['\\1', 'uses \\1 (backreferences, word boundaries and property escapes are not supported)'],
    ['(?=a)', 'uses a lookaround or named group ((?...)), which is not supported'],
    ['(a', 'has an unclosed ('],
    ['a)', 'has an unmatched )'],
    ['a^b', 'has ^ other than at the very start or end'],
    ['*a', 'has a quantifier * with nothing to repeat'],
    ['[a', 'has an unclosed ['],
    ['[z-a]', 'has a reversed range in a class'],
  ];
  for (const [pattern, why] of refusals)
    it(`refuses ${JSON.stringify(pattern)}: ${why}`, () => {
      expect(() => patternGrammar(pattern, refuse)).toThrow(why);
    });
});
