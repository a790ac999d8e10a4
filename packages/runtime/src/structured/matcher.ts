/**
 * A matcher over a compiled grammar, llama.cpp-style: a parse state is a set of stacks of grammar
 * positions, each stack's top a character set the next character must match. Stacks are interned
 * persistent lists (a node is a position plus its parent node), so equal stacks are equal ids,
 * sets of stacks are interned too, and a state is one integer. The matcher consumes UTF-8 bytes:
 * a state also carries the bytes of a code point not finished yet, and such a partial state
 * lives only while some stack can still accept a code point it could complete to.
 *
 * Every transition is memoized (state, byte) -> state, so after warm-up stepping is a table read;
 * that is what makes walking a token trie per decode step cheap.
 */
import { StructuredOutputError } from './errors.js';
import { type CompiledGrammar, END, MAX_CODE_POINT, refRule } from './grammar.js';

/** A dead state: the bytes so far cannot be continued into a sentence of the grammar. */
export const DEAD = -1;
/** A transition not computed yet. */
export const UNKNOWN = -2;
const MIN_BY_LENGTH = [0, 0, 0x80, 0x800, 0x10000];

/**
 * Bounds on the matcher's work, so that an ambiguous grammar (nested optional repetitions, whose
 * parse stacks multiply) is refused in well under a second instead of holding the event loop for
 * minutes: parse stacks alive in one state, stacks visited by one closure or step, and stack nodes
 * in all (the matcher is kept per grammar and reused; every JSON schema grammar stays far below).
 */
export const MAX_STACKS_PER_STATE = 1 << 12;
export const MAX_STEP_WORK = 1 << 20;
export const MAX_MATCHER_NODES = 1 << 21;

function tooComplex(what: string): never {
  throw new StructuredOutputError(
    'IE_GRAMMAR_TOO_COMPLEX',
    `matching the grammar needs ${what}; it is too ambiguous (nested optional repetitions such as ((a{0,20}){0,20}){0,20} multiply parse stacks): simplify it`,
  );
}

export class GrammarMatcher {
  /** The state before any byte. */
  readonly initial: number;

  // Stack nodes: node 0 is the empty stack (the grammar is complete).
  private readonly nodePos: number[] = [-1];
  private readonly nodeParent: number[] = [-1];
  private readonly nodeIds = new Map<number, number>();
  private readonly closures: Array<Int32Array | undefined> = [];

  // Interned sets of stacks (sorted node ids).
  private readonly setStacks: Int32Array[] = [];
  private readonly setAccepts: boolean[] = [];
  private readonly setIds = new Map<string, number>();
  private readonly setSteps = new Map<number, number>();
  private readonly setBySubset: Array<Map<number, number> | undefined> = [];
  /** Per stack whose top is a character set: the stacks after that character is taken. */
  private readonly advanced: Array<Int32Array | undefined> = [];

  // Full states: a stack set plus an unfinished UTF-8 character (value so far, bytes left, its length).
  private readonly fsSet: number[] = [];
  private readonly fsVal: number[] = [];
  private readonly fsRem: number[] = [];
  private readonly fsLen: number[] = [];
  private readonly fsIds = new Map<number, number>();
  /** Per state, the next state for each byte (UNKNOWN until computed): read directly by the trie walk. */
  readonly trans: Array<Int32Array | undefined> = [];

  constructor(readonly grammar: CompiledGrammar) {
    const g = grammar;
    const all = new Set<number>();
    for (const a of g.ruleAlts[g.root]) for (const s of this.closure(this.node(a, 0))) all.add(s);
    this.initial = this.full(this.internSet([...all]), 0, 0, 0);
  }

  /** Distinct states created so far (for cache sizing and tests). */
  get stateCount(): number {
    return this.fsSet.length;
  }

  private node(pos: number, parent: number): number {
    const key = parent * (this.grammar.code.length + 1) + pos;
    let id = this.nodeIds.get(key);
    if (id === undefined) {
      id = this.nodePos.length;
      if (id >= MAX_MATCHER_NODES) tooComplex(`more than ${MAX_MATCHER_NODES} parse stack nodes`);
      this.nodePos.push(pos);
      this.nodeParent.push(parent);
      this.nodeIds.set(key, id);
    }
    return id;
  }

  /**
   * The stacks whose top is a character set (or the empty stack) that `start` expands to: rule
   * references replaced by their alternatives, finished alternatives popped. A worklist with a
   * visited set, so cycles of tail references (from `(x?)*`) end.
   */
  private closure(start: number): Int32Array {
    const cached = this.closures[start];
    if (cached) return cached;
    const { code, ruleAlts } = this.grammar;
    const out: number[] = [];
    const seen = new Set<number>([start]);
    const queue = [start];
    const add = (n: number) => {
      if (!seen.has(n)) {
        seen.add(n);
        queue.push(n);
      }
    };
    let work = 0;
    while (queue.length > 0) {
      if (++work > MAX_STEP_WORK) tooComplex(`more than ${MAX_STEP_WORK} stack expansions for one position`);
      const n = queue.pop() as number;
      if (n === 0) {
        out.push(0);
        continue;
      }
      const pos = this.nodePos[n];
      const c = code[pos];
      if (c >= 0) out.push(n);
      else if (c === END) add(this.nodeParent[n]);
      else {
        // The continuation after the reference; none when it ends its alternative (a tail call).
        const cont = code[pos + 1] === END ? this.nodeParent[n] : this.node(pos + 1, this.nodeParent[n]);
        for (const a of ruleAlts[refRule(c)]) add(this.node(a, cont));
      }
    }
    if (out.length > MAX_STACKS_PER_STATE) tooComplex(`more than ${MAX_STACKS_PER_STATE} parse stacks at once`);
    const result = Int32Array.from(out);
    this.closures[start] = result;
    return result;
  }

  private internSet(stacks: number[]): number {
    stacks.sort((a, b) => a - b);
    const key = stacks.join(',');
    let id = this.setIds.get(key);
    if (id === undefined) {
      id = this.setStacks.length;
      this.setStacks.push(Int32Array.from(stacks));
      this.setAccepts.push(stacks[0] === 0);
      this.setIds.set(key, id);
    }
    return id;
  }

  private full(set: number, val: number, rem: number, len: number): number {
    const key = ((set * 4 + rem) * 5 + len) * 0x200000 + val;
    let id = this.fsIds.get(key);
    if (id === undefined) {
      id = this.fsSet.length;
      this.fsSet.push(set);
      this.fsVal.push(val);
      this.fsRem.push(rem);
      this.fsLen.push(len);
      this.fsIds.set(key, id);
      this.trans.push(undefined);
    }
    return id;
  }

  private inSet(setId: number, cp: number): boolean {
    const r = this.grammar.sets[setId];
    for (let i = 0; i < r.length; i += 2) {
      if (cp < r[i]) return false;
      if (cp <= r[i + 1]) return true;
    }
    return false;
  }

  private intersects(setId: number, lo: number, hi: number): boolean {
    const r = this.grammar.sets[setId];
    for (let i = 0; i < r.length; i += 2) {
      if (r[i] > hi) return false;
      if (r[i + 1] >= lo) return true;
    }
    return false;
  }

  /** The stack set after one code point, or DEAD. */
  private stepSet(set: number, cp: number): number {
    const key = set * 0x110000 + cp;
    const known = this.setSteps.get(key);
    if (known !== undefined) return known;
    const code = this.grammar.code;
    const stacks = this.setStacks[set];
    // Which stacks take `cp` is all that matters (a stack that takes any character moves the same
    // way), so results are kept per subset of stacks: the many characters that do the same thing
    // (every letter inside a string) cost one union, not one each.
    let subset = 0;
    const wide = stacks.length > 30;
    if (!wide)
      for (let i = 0; i < stacks.length; i++) if (stacks[i] !== 0 && this.inSet(code[this.nodePos[stacks[i]]], cp)) subset |= 1 << i;
    let bySubset = this.setBySubset[set];
    let id = wide ? undefined : bySubset?.get(subset);
    if (id === undefined) {
      const next = new Set<number>();
      let work = 0;
      for (let i = 0; i < stacks.length; i++) {
        const s = stacks[i];
        if (s === 0 || (wide ? !this.inSet(code[this.nodePos[s]], cp) : (subset & (1 << i)) === 0)) continue;
        let adv = this.advanced[s];
        if (adv === undefined) {
          adv = this.closure(this.node(this.nodePos[s] + 1, this.nodeParent[s]));
          this.advanced[s] = adv;
        }
        work += adv.length;
        if (work > MAX_STEP_WORK) tooComplex(`more than ${MAX_STEP_WORK} stack moves for one character`);
        for (const t of adv) next.add(t);
      }
      if (next.size > MAX_STACKS_PER_STATE) tooComplex(`more than ${MAX_STACKS_PER_STATE} parse stacks at once`);
      id = next.size === 0 ? DEAD : this.internSet([...next]);
      if (!wide) {
        if (!bySubset) {
          bySubset = new Map();
          this.setBySubset[set] = bySubset;
        }
        bySubset.set(subset, id);
      }
    }
    this.setSteps.set(key, id);
    return id;
  }

  /** A state inside a multi-byte character, if some stack accepts a code point it can still become. */
  private partial(set: number, val: number, rem: number, len: number): number {
    const span = 1 << (6 * rem);
    const lo = Math.max(val * span, MIN_BY_LENGTH[len]);
    const hi = Math.min(val * span + span - 1, 0x10ffff);
    if (lo > hi || (lo >= 0xd800 && hi <= 0xdfff)) return DEAD;
    const code = this.grammar.code;
    for (const s of this.setStacks[set])
      if (s !== 0 && this.intersects(code[this.nodePos[s]], lo, hi)) return this.full(set, val, rem, len);
    return DEAD;
  }

  /** The state after one byte, or DEAD. */
  step(state: number, byte: number): number {
    let t = this.trans[state];
    if (t === undefined) {
      t = new Int32Array(256).fill(UNKNOWN);
      this.trans[state] = t;
    } else if (t[byte] !== UNKNOWN) return t[byte];
    const set = this.fsSet[state];
    const rem = this.fsRem[state];
    let next: number;
    if (rem === 0) {
      if (byte < 0x80) {
        const ns = this.stepSet(set, byte);
        next = ns === DEAD ? DEAD : this.full(ns, 0, 0, 0);
      } else if (byte >= 0xc2 && byte <= 0xdf) next = this.partial(set, byte & 0x1f, 1, 2);
      else if (byte >= 0xe0 && byte <= 0xef) next = this.partial(set, byte & 0x0f, 2, 3);
      else if (byte >= 0xf0 && byte <= 0xf4) next = this.partial(set, byte & 0x07, 3, 4);
      else next = DEAD;
    } else if ((byte & 0xc0) !== 0x80) next = DEAD;
    else {
      const val = this.fsVal[state] * 64 + (byte & 0x3f);
      const len = this.fsLen[state];
      if (rem > 1) next = this.partial(set, val, rem - 1, len);
      else if (val < MIN_BY_LENGTH[len] || val > 0x10ffff || (val >= 0xd800 && val <= 0xdfff)) next = DEAD;
      else {
        const ns = this.stepSet(set, val);
        next = ns === DEAD ? DEAD : this.full(ns, 0, 0, 0);
      }
    }
    t[byte] = next;
    return next;
  }

  /**
   * Whether every code point >= 0x80 leads from `state` back to itself (inside a JSON string):
   * true when each stack's top either holds all of U+0080..U+10FFFF or none of it, so one such
   * code point stands for them all.
   */
  loopsAboveAscii(state: number): boolean {
    if (this.fsRem[state] !== 0) return false;
    const set = this.fsSet[state];
    const code = this.grammar.code;
    let any = false;
    for (const s of this.setStacks[set]) {
      if (s === 0) continue;
      const r = this.grammar.sets[code[this.nodePos[s]]];
      let covers = false;
      for (let i = 0; i < r.length; i += 2) if (r[i] <= 0x80 && r[i + 1] >= MAX_CODE_POINT) covers = true;
      if (covers) any = true;
      else if (this.intersects(code[this.nodePos[s]], 0x80, MAX_CODE_POINT)) return false;
    }
    return any && this.stepSet(set, 0x80) === set;
  }

  /** The state after `bytes`, or DEAD. */
  stepBytes(state: number, bytes: Uint8Array): number {
    let s = state;
    for (let i = 0; i < bytes.length && s !== DEAD; i++) s = this.step(s, bytes[i]);
    return s;
  }

  /** Whether the text so far is a whole sentence of the grammar. */
  accepting(state: number): boolean {
    return this.fsRem[state] === 0 && this.setAccepts[this.fsSet[state]];
  }

  /** Whether any byte can follow (false: the sentence is complete and nothing may be added). */
  canContinue(state: number): boolean {
    if (this.fsRem[state] > 0) return true;
    const stacks = this.setStacks[this.fsSet[state]];
    return stacks.length > 1 || stacks[0] !== 0;
  }

  /** Whether `text` (UTF-8) is a whole sentence of the grammar. */
  matches(text: string): boolean {
    const s = this.stepBytes(this.initial, new TextEncoder().encode(text));
    return s !== DEAD && this.accepting(s);
  }

  /** Whether `text` is a prefix of some sentence of the grammar. */
  isPrefix(text: string): boolean {
    return this.stepBytes(this.initial, new TextEncoder().encode(text)) !== DEAD;
  }
}
