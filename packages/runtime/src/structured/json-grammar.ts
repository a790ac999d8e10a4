/**
 * JSON in GBNF: the primitives the schema compiler reuses and a generic grammar for
 * `response_format: { type: "json_object" }`. Numbers have at most 16 integer digits, 16 fraction
 * digits and a two-digit exponent, and whitespace is one space or a newline plus up to 20
 * indentation characters (llama.cpp's rule): bounds a small or random model cannot run off into,
 * and every number stays finite when parsed.
 */

/** Primitive rules by name (the schema compiler adds the ones a schema uses). */
export const JSON_PRIMITIVES: Readonly<Record<string, string>> = {
  ws: '| " " | "\\n" [ \\t]{0,20}',
  // One character of a JSON string: anything but controls, quote and backslash, or an escape
  // (\\u escapes never name a surrogate, so each grammar character is exactly one code point).
  char: '[^"\\\\\\x00-\\x1F] | "\\\\" (["\\\\/bfnrt] | "u" ([0-9a-cA-CefEF] [0-9a-fA-F]{3} | [dD] [0-7] [0-9a-fA-F]{2}))',
  string: '"\\"" char* "\\""',
  integer: '"-"? ("0" | [1-9] [0-9]{0,15})',
  number: '"-"? ("0" | [1-9] [0-9]{0,15}) ("." [0-9]{1,16})? ([eE] [-+]? [0-9]{1,2})?',
  boolean: '"true" | "false"',
  null: '"null"',
  value: 'object | array | string | number | boolean | null',
  object: '"{" ws (member (ws "," ws member)* ws)? "}"',
  member: 'string ws ":" ws value',
  array: '"[" ws (value (ws "," ws value)* ws)? "]"',
};

/** Which primitives each one uses (so a grammar includes exactly what it references). */
const USES: Readonly<Record<string, readonly string[]>> = {
  string: ['char'],
  value: ['object', 'array', 'string', 'number', 'boolean', 'null'],
  object: ['ws', 'member'],
  member: ['string', 'ws', 'value'],
  array: ['ws', 'value'],
};

/** The primitive rules `names` need, with their dependencies, as GBNF lines. */
export function primitiveRules(names: Iterable<string>): string {
  const need = new Set<string>();
  const add = (n: string) => {
    if (need.has(n)) return;
    need.add(n);
    for (const d of USES[n] ?? []) add(d);
  };
  for (const n of names) add(n);
  return Object.keys(JSON_PRIMITIVES)
    .filter((n) => need.has(n))
    .map((n) => `${n} ::= ${JSON_PRIMITIVES[n]}`)
    .join('\n');
}

/** Any JSON object (what OpenAI's `response_format: { type: "json_object" }` promises). */
export const JSON_GRAMMAR = `root ::= object\n${primitiveRules(['object'])}\n`;

/** Any JSON value. */
export const JSON_VALUE_GRAMMAR = `root ::= value\n${primitiveRules(['value'])}\n`;
