/**
 * Structured output: constrain generation to a JSON schema, a GBNF grammar or any JSON object.
 * `createConstraint(tokenizer, { jsonSchema })` once per generation; per step `mask(logits)`
 * before sampling and `accept(token)` after; stop on `done()` (or a stop token, which the mask
 * allows only once the output is complete).
 */
export {
  createConstraint,
  constraintVocabulary,
  grammarOf,
  type ConstraintSpec,
  type ConstraintVocabulary,
  type TokenConstraint,
} from './constraint.js';
export { compileGrammar, type CompiledGrammar } from './grammar.js';
export { GrammarMatcher } from './matcher.js';
export { schemaToGrammar } from './schema.js';
export { JSON_GRAMMAR, JSON_VALUE_GRAMMAR } from './json-grammar.js';
export { TokenTrie } from './trie.js';
export {
  StructuredOutputError,
  GrammarError,
  SchemaError,
  STRUCTURED_ERROR_CODES,
  type StructuredErrorCode,
} from './errors.js';
