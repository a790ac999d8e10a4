/**
 * Errors from structured output: one class per stage (grammar text, JSON schema, the constraint at
 * run time), each with a stable `code` from one table so callers (the CLI, the server's 400s)
 * switch on codes, never on messages.
 */
export const STRUCTURED_ERROR_CODES = {
  IE_GRAMMAR_SYNTAX: 'the grammar text does not parse (the message says what was expected where)',
  IE_GRAMMAR_BAD_ESCAPE: 'a string literal or character class has an escape the grammar format does not define',
  IE_GRAMMAR_UNTERMINATED: 'a string literal, character class or group is not closed',
  IE_GRAMMAR_UNDEFINED_RULE: 'a rule is referenced but never defined',
  IE_GRAMMAR_DUPLICATE_RULE: 'a rule is defined twice',
  IE_GRAMMAR_NO_ROOT: 'the grammar has no `root` rule (the start rule)',
  IE_GRAMMAR_LEFT_RECURSION:
    'a rule can reach itself without consuming a character (left recursion); rewrite it right-recursively or with * / +',
  IE_GRAMMAR_BAD_REPETITION: 'a {m,n} repetition is malformed (n < m, or not numbers)',
  IE_GRAMMAR_TOO_LARGE: 'the grammar expands to too many elements (huge {m,n} counts)',
  IE_GRAMMAR_TOO_COMPLEX:
    'matching the grammar needs too many parse stacks at once (ambiguous nesting such as ((a{0,20}){0,20}){0,20}); write it without nested optional repetitions',
  IE_GRAMMAR_UNSUPPORTED: 'the grammar uses a construct ie does not implement (token references <...>)',
  IE_SCHEMA_UNSUPPORTED: 'the JSON schema uses a keyword (or keyword value) ie cannot turn into a grammar',
  IE_SCHEMA_INVALID: 'the JSON schema is malformed or unsatisfiable',
  IE_SCHEMA_BAD_REF: 'a $ref is not a local reference (#/$defs/..., #/definitions/..., #) or points at nothing',
  IE_CONSTRAINT_OPTIONS: 'createConstraint needs exactly one of jsonSchema, grammar, json',
  IE_CONSTRAINT_VOCAB: 'the vocabulary cannot be used (no token bytes: the tokenizer cannot list them)',
  IE_CONSTRAINT_REJECTED: 'accept() got a token the grammar does not allow here (it was not sampled from masked logits)',
  IE_CONSTRAINT_DEAD_END: 'no token of the vocabulary can continue the grammar (the vocabulary lacks the bytes it needs)',
} as const;
export type StructuredErrorCode = keyof typeof STRUCTURED_ERROR_CODES;

export class StructuredOutputError extends Error {
  override readonly name: string = 'StructuredOutputError';
  constructor(
    readonly code: StructuredErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Grammar text errors carry where: a 0-based offset and a 1-based line and column. */
export class GrammarError extends StructuredOutputError {
  override readonly name = 'GrammarError';
  constructor(
    code: StructuredErrorCode,
    message: string,
    readonly offset: number,
    readonly line: number,
    readonly column: number,
  ) {
    super(code, `grammar ${line}:${column}: ${message}`);
  }

  static at(code: StructuredErrorCode, text: string, offset: number, message: string): GrammarError {
    let line = 1;
    let col = 1;
    for (let i = 0; i < offset && i < text.length; i++) {
      if (text[i] === '\n') {
        line++;
        col = 1;
      } else col++;
    }
    return new GrammarError(code, message, offset, line, col);
  }
}

/** Schema errors name the JSON pointer of the offending subschema and, where one is at fault, the keyword. */
export class SchemaError extends StructuredOutputError {
  override readonly name = 'SchemaError';
  constructor(
    code: StructuredErrorCode,
    readonly path: string,
    readonly keyword: string | undefined,
    message: string,
  ) {
    super(code, `schema ${path || '#'}${keyword ? ` (${keyword})` : ''}: ${message}`);
  }
}
