/**
 * The regular expressions of a tokenizer.json (Split pre-tokenizers, Replace normalizers and
 * decoders) run on every prompt through JavaScript's backtracking engine, which cannot be
 * interrupted: `(a|aa)+$` against sixty a's and a b held a generation for good. Patterns whose
 * matching time can grow exponentially with the text are refused before the tokenizer is used: a
 * group repeated without bound (`*`, `+`, `{n,}`, `{n,m}` with m > 16) that holds a quantifier or
 * alternatives, and backreferences. The pre-tokenizer patterns of real vocabularies (GPT-2,
 * cl100k, o200k, Llama 3, Qwen2, DeepSeek, BLOOM; regex-risk.test.ts) quantify only characters
 * and classes, or make a group optional (`(?i:'s|'t|…)?`), and pass.
 */

/** How far a pattern's groups may nest, and how many regexes a tokenizer.json is searched for. */
const MAX_GROUP_DEPTH = 64;
const MAX_SEARCH_DEPTH = 16;
/** The most repetitions of a group that hold alternatives or a quantifier counted as bounded. */
const BOUNDED_REPEAT = 16;

/** Why `pattern` could backtrack without bound, or undefined where it cannot that way. */
export function backtrackingRisk(pattern: string): string | undefined {
  // Per open group: whether it holds a quantifier or an alternation (nested groups' count too).
  const groups: Array<{ quantified: boolean; alternatives: boolean }> = [{ quantified: false, alternatives: false }];
  let last: 'atom' | 'group' | 'none' = 'none';
  let closed: { quantified: boolean; alternatives: boolean } | undefined;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    const top = groups[groups.length - 1];
    if (c === '\\') {
      const n = pattern[i + 1] ?? '';
      if (/[1-9]/.test(n) || (n === 'k' && pattern[i + 2] === '<')) return `it uses a backreference (\\${n}) at ${i}`;
      // \p{…}, \u{…}, \x.. and the like are one atom; their braces are not a quantifier.
      if ((n === 'p' || n === 'P' || n === 'u') && pattern[i + 2] === '{') i = Math.max(i + 2, pattern.indexOf('}', i + 2));
      else i++;
      last = 'atom';
      continue;
    }
    if (c === '[') {
      // A class is one atom: skip to its closing bracket (a "]" first in it, or escaped, is literal).
      let j = i + 1;
      if (pattern[j] === '^') j++;
      if (pattern[j] === ']') j++;
      for (; j < pattern.length && pattern[j] !== ']'; j++) if (pattern[j] === '\\') j++;
      i = j;
      last = 'atom';
      continue;
    }
    if (c === '(') {
      if (groups.length > MAX_GROUP_DEPTH) return `its groups nest more than ${MAX_GROUP_DEPTH} deep`;
      groups.push({ quantified: false, alternatives: false });
      // (?:, (?=, (?!, (?<=, (?<!, (?<name>, (?i: …: the prefix is not an atom.
      if (pattern[i + 1] === '?') {
        const m = /^\?(?:<[=!]|<[A-Za-z_][A-Za-z0-9_]*>|[=!:]|[a-zA-Z-]+:)/.exec(pattern.slice(i + 1));
        if (m) i += m[0].length;
      }
      last = 'none';
      continue;
    }
    if (c === ')') {
      if (groups.length === 1) return undefined; // unbalanced: the library refuses it itself
      closed = groups.pop();
      const outer = groups[groups.length - 1];
      if (closed?.quantified) outer.quantified = true;
      if (closed?.alternatives) outer.alternatives = true;
      last = 'group';
      continue;
    }
    if (c === '|') {
      top.alternatives = true;
      last = 'none';
      continue;
    }
    const q = /^(?:[*+?]|\{(\d+)(,(\d*))?\})/.exec(pattern.slice(i));
    if (q && last !== 'none') {
      const unbounded = q[0] === '*' || q[0] === '+' || (q[2] !== undefined && (q[3] === '' || Number(q[3]) > BOUNDED_REPEAT));
      if (last === 'group' && unbounded && closed && (closed.quantified || closed.alternatives))
        return `the group before ${q[0]} at ${i} repeats ${closed.alternatives ? 'alternatives' : 'a quantifier'} without bound`;
      // `?` counts inside a repeated group: (a?a)+ is (a|aa)+.
      top.quantified = true;
      i += q[0].length - 1;
      if (pattern[i + 1] === '?' || pattern[i + 1] === '+') i++; // lazy or possessive
      last = 'none';
      continue;
    }
    last = 'atom';
  }
  return undefined;
}

/** Every `{"Regex": …}` pattern of a tokenizer.json's normalizer, pre-tokenizer and decoder. */
export function tokenizerRegexes(json: Record<string, unknown>): string[] {
  const found: string[] = [];
  const visit = (v: unknown, depth: number) => {
    if (depth > MAX_SEARCH_DEPTH || typeof v !== 'object' || v === null) return;
    if (Array.isArray(v)) {
      for (const x of v) visit(x, depth + 1);
      return;
    }
    const o = v as Record<string, unknown>;
    if (typeof o.Regex === 'string') found.push(o.Regex);
    for (const x of Object.values(o)) if (typeof x === 'object') visit(x, depth + 1);
  };
  for (const k of ['normalizer', 'pre_tokenizer', 'decoder']) visit(json[k], 0);
  return found;
}
