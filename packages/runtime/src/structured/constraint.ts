/**
 * Constrained decoding: a grammar (GBNF, a JSON schema compiled to one, or generic JSON) applied
 * to a model's logits one step at a time. Per step the allowed tokens are found by walking the
 * vocabulary's byte trie against the grammar state, pruning a subtree at its first rejected byte,
 * so most of the vocabulary is never looked at byte by byte; the mask of each grammar state is
 * kept, so a state seen before (inside a string, between array items) costs one pass over the
 * logits. EOS (every stop token) is allowed exactly when the text so far is complete.
 *
 *   const c = createConstraint(tokenizer, { jsonSchema });
 *   c.mask(logits); const t = sample(logits); if (stop(t)) break; c.accept(t); if (c.done()) break;
 */
import type { Tokenizer } from '../tokenizer/types.js';
import { StructuredOutputError } from './errors.js';
import { compileGrammar } from './grammar.js';
import { JSON_GRAMMAR } from './json-grammar.js';
import { GrammarMatcher, UNKNOWN } from './matcher.js';
import { DEAD } from './matcher.js';
import { schemaToGrammar } from './schema.js';
import { TokenTrie } from './trie.js';

/** A vocabulary as the constraint sees it: each token's bytes as decoding prints them, and the stop tokens. */
export interface ConstraintVocabulary {
  /** Bytes per token id; empty for control/special tokens, which are never allowed (stop tokens aside). */
  readonly tokens: readonly Uint8Array[];
  /** Tokens that end generation (EOS, EOT, ...): allowed only when the grammar is complete. */
  readonly stopTokens: Iterable<number>;
}

/** What to constrain to: exactly one of a JSON schema, GBNF text, or any JSON object (`response_format: json_object`). */
export type ConstraintSpec = { jsonSchema: object | boolean } | { grammar: string } | { json: true };

export interface TokenConstraint {
  /** Sets every logit the grammar does not allow next to -Infinity (ids past the vocabulary too). */
  mask(logits: Float32Array): void;
  /** Advances past a sampled token; throws IE_CONSTRAINT_REJECTED if the grammar does not allow it. */
  accept(token: number): void;
  /** Whether generation is over: a stop token was accepted, or the text is complete and nothing may follow. */
  done(): boolean;
  /** Whether the text so far is complete (a stop token is allowed now). */
  canEnd(): boolean;
  /** Whether `token` is allowed next. */
  allows(token: number): boolean;
  /** An independent copy at the same point (shares the compiled grammar and its caches). */
  fork(): TokenConstraint;
  /** The grammar in force (GBNF), e.g. what a JSON schema compiled to. */
  readonly grammar: string;
}

/** Masks kept per compiled grammar: at most this many bytes of them (one byte per vocabulary entry each). */
const MASK_CACHE_BYTES = 64 << 20;
/** Compiled grammars kept per vocabulary (a server sees the same few schemas again and again). */
const GRAMMARS_PER_VOCAB = 32;

/** A grammar compiled against one vocabulary: the matcher, the trie, and the mask of every state seen. */
class CompiledConstraint {
  readonly matcher: GrammarMatcher;
  readonly stop: Int32Array;
  private readonly masks = new Map<number, Uint8Array>();
  private readonly maxMasks: number;
  // Scratch stacks for the trie walk, sized once.
  private readonly walkNode: Int32Array;
  private readonly walkState: Int32Array;

  constructor(
    readonly grammar: string,
    readonly trie: TokenTrie,
    readonly tokens: readonly Uint8Array[],
    stopTokens: Iterable<number>,
  ) {
    this.matcher = new GrammarMatcher(compileGrammar(grammar));
    this.stop = Int32Array.from(new Set([...stopTokens].filter((t) => t >= 0 && t < tokens.length)));
    this.maxMasks = Math.max(16, Math.floor(MASK_CACHE_BYTES / Math.max(1, tokens.length)));
    // A DFS stack holds at most (depth x fan-out) entries; the trie's node count bounds it.
    this.walkNode = new Int32Array(trie.nodeCount);
    this.walkState = new Int32Array(trie.nodeCount);
  }

  /** The allowed tokens in `state` (1 = allowed), computed by one trie walk and then kept. */
  maskOf(state: number): Uint8Array {
    const known = this.masks.get(state);
    if (known) return known;
    const { edgeStart, edgeByte, edgeChild, tokStart, order, subtreeEnd, subtreeAscii, subtreeHigh, subtreeBadUtf8 } = this.trie;
    const m = this.matcher;
    // The ASCII bytes on which `state` loops to itself (inside a string: nearly all of them). A
    // subtree reached in `state` whose bytes are all such is accepted whole, without stepping.
    const loop = new Uint32Array(4);
    for (let b = 0; b < 128; b++) if (m.step(state, b) === state) loop[b >> 5] |= 1 << (b & 31);
    const loops = (loop[0] | loop[1] | loop[2] | loop[3]) !== 0;
    // And whether it loops on every non-ASCII character too: then well-formed UTF-8 subtrees qualify.
    const highLoops = loops && m.loopsAboveAscii(state);
    const allowed = new Uint8Array(this.tokens.length);
    const nodes = this.walkNode;
    const states = this.walkState;
    let sp = 0;
    nodes[sp] = 0;
    states[sp++] = state;
    const trans = m.trans;
    while (sp > 0) {
      const node = nodes[--sp];
      const s = states[sp];
      // The transition table read inline; the matcher computes (and memoizes) only what is new.
      let t = trans[s];
      for (let e = edgeStart[node], end = edgeStart[node + 1]; e < end; e++) {
        let next = t === undefined ? UNKNOWN : t[edgeByte[e]];
        if (next === UNKNOWN) {
          next = m.step(s, edgeByte[e]);
          t = trans[s];
        }
        if (next < 0) continue;
        const child = edgeChild[e];
        if (
          loops &&
          next === state &&
          (subtreeHigh[child] === 0 || (highLoops && subtreeBadUtf8[child] === 0)) &&
          (subtreeAscii[child * 4] & ~loop[0]) === 0 &&
          (subtreeAscii[child * 4 + 1] & ~loop[1]) === 0 &&
          (subtreeAscii[child * 4 + 2] & ~loop[2]) === 0 &&
          (subtreeAscii[child * 4 + 3] & ~loop[3]) === 0
        ) {
          for (let k = tokStart[child], kEnd = tokStart[subtreeEnd[child]]; k < kEnd; k++) allowed[order[k]] = 1;
          continue;
        }
        for (let k = tokStart[child], kEnd = tokStart[child + 1]; k < kEnd; k++) allowed[order[k]] = 1;
        if (edgeStart[child + 1] > edgeStart[child]) {
          nodes[sp] = child;
          states[sp++] = next;
        }
      }
    }
    const end = m.accepting(state) ? 1 : 0;
    for (const t of this.stop) allowed[t] = end;
    if (this.masks.size >= this.maxMasks) this.masks.delete(this.masks.keys().next().value as number);
    this.masks.set(state, allowed);
    return allowed;
  }
}

interface VocabEntry {
  trie: TokenTrie;
  grammars: Map<string, CompiledConstraint>;
}
const byTokens = new WeakMap<readonly Uint8Array[], VocabEntry>();
const byTokenizer = new WeakMap<Tokenizer, ConstraintVocabulary>();

/** The constraint vocabulary of a tokenizer (its tokenBytes and stopTokens), built once per tokenizer. */
export function constraintVocabulary(tokenizer: Tokenizer): ConstraintVocabulary {
  let v = byTokenizer.get(tokenizer);
  if (!v) {
    if (!tokenizer.tokenBytes)
      throw new StructuredOutputError('IE_CONSTRAINT_VOCAB', `the ${tokenizer.kind} tokenizer cannot list its tokens' bytes`);
    v = { tokens: tokenizer.tokenBytes(), stopTokens: tokenizer.stopTokens };
    byTokenizer.set(tokenizer, v);
  }
  return v;
}

/** The GBNF a spec stands for (a JSON schema compiled, generic JSON, or the grammar itself). */
export function grammarOf(spec: ConstraintSpec): string {
  const keys = ['jsonSchema', 'grammar', 'json'].filter((k) => (spec as Record<string, unknown>)[k] !== undefined);
  if (keys.length !== 1)
    throw new StructuredOutputError(
      'IE_CONSTRAINT_OPTIONS',
      keys.length === 0 ? 'give one of jsonSchema, grammar or json' : `give only one of ${keys.join(', ')}`,
    );
  if ('grammar' in spec && spec.grammar !== undefined) {
    if (typeof spec.grammar !== 'string') throw new StructuredOutputError('IE_CONSTRAINT_OPTIONS', 'grammar must be GBNF text');
    return spec.grammar;
  }
  if ('json' in spec && spec.json !== undefined) {
    if (spec.json !== true) throw new StructuredOutputError('IE_CONSTRAINT_OPTIONS', 'json must be true');
    return JSON_GRAMMAR;
  }
  return schemaToGrammar((spec as { jsonSchema: object | boolean }).jsonSchema);
}

/**
 * A constraint over `vocab` (a tokenizer, or token bytes + stop tokens) for one generation. The
 * trie is built once per vocabulary and each grammar compiled once per vocabulary (kept for the
 * next request with the same grammar or schema); errors are StructuredOutputError subclasses.
 */
export function createConstraint(vocab: ConstraintVocabulary | Tokenizer, spec: ConstraintSpec): TokenConstraint {
  const v = 'tokens' in vocab ? vocab : constraintVocabulary(vocab);
  const grammar = grammarOf(spec);
  if (v.tokens.length === 0) throw new StructuredOutputError('IE_CONSTRAINT_VOCAB', 'the vocabulary is empty');
  let entry = byTokens.get(v.tokens);
  if (!entry) {
    entry = { trie: new TokenTrie(v.tokens), grammars: new Map() };
    byTokens.set(v.tokens, entry);
  }
  let compiled = entry.grammars.get(grammar);
  if (!compiled) {
    compiled = new CompiledConstraint(grammar, entry.trie, v.tokens, v.stopTokens);
    if (entry.grammars.size >= GRAMMARS_PER_VOCAB) entry.grammars.delete(entry.grammars.keys().next().value as string);
    entry.grammars.set(grammar, compiled);
  }
  return new Constraint(compiled, compiled.matcher.initial, false);
}

class Constraint implements TokenConstraint {
  constructor(
    private readonly c: CompiledConstraint,
    private state: number,
    private finished: boolean,
  ) {}

  get grammar(): string {
    return this.c.grammar;
  }

  mask(logits: Float32Array): void {
    if (this.finished) {
      logits.fill(Number.NEGATIVE_INFINITY);
      for (const t of this.c.stop) if (t < logits.length) logits[t] = 0;
      return;
    }
    const m = this.c.maskOf(this.state);
    const n = Math.min(m.length, logits.length);
    let any = 0;
    for (let i = 0; i < n; i++) {
      if (m[i] === 0) logits[i] = Number.NEGATIVE_INFINITY;
      else any++;
    }
    if (logits.length > n) logits.fill(Number.NEGATIVE_INFINITY, n);
    if (any === 0)
      throw new StructuredOutputError(
        'IE_CONSTRAINT_DEAD_END',
        'no token of the vocabulary can continue the grammar here (and it is not complete); the vocabulary lacks the bytes the grammar needs next',
      );
  }

  accept(token: number): void {
    const c = this.c;
    if (c.stop.includes(token)) {
      if (!this.finished && !c.matcher.accepting(this.state))
        throw new StructuredOutputError('IE_CONSTRAINT_REJECTED', `stop token ${token} before the grammar is complete`);
      this.finished = true;
      return;
    }
    if (this.finished) throw new StructuredOutputError('IE_CONSTRAINT_REJECTED', `token ${token} after the end of the output`);
    const bytes = c.tokens[token];
    const next = bytes === undefined || bytes.length === 0 ? DEAD : c.matcher.stepBytes(this.state, bytes);
    if (next === DEAD)
      throw new StructuredOutputError(
        'IE_CONSTRAINT_REJECTED',
        `token ${token} (${bytes === undefined ? 'not in the vocabulary' : JSON.stringify(Buffer.from(bytes).toString('utf8'))}) is not allowed by the grammar here; sample from masked logits`,
      );
    this.state = next;
  }

  done(): boolean {
    return this.finished || (this.c.matcher.accepting(this.state) && !this.c.matcher.canContinue(this.state));
  }

  canEnd(): boolean {
    return this.finished || this.c.matcher.accepting(this.state);
  }

  allows(token: number): boolean {
    if (this.finished) return this.c.stop.includes(token);
    return token >= 0 && token < this.c.tokens.length && this.c.maskOf(this.state)[token] === 1;
  }

  fork(): TokenConstraint {
    return new Constraint(this.c, this.state, this.finished);
  }
}
