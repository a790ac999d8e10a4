/**
 * A byte trie over a vocabulary, built once per vocabulary and shared by every constraint on it.
 * Nodes are numbered in preorder with children in byte order, so a node's subtree is a contiguous
 * range of node ids and the tokens ending anywhere in it a contiguous range of `order`; everything
 * is flat typed arrays, so walking it per decode step allocates nothing.
 */
export class TokenTrie {
  /** Ids of the vocabulary (the length of the token list it was built from). */
  readonly vocabSize: number;
  readonly nodeCount: number;
  /** Children of node n: edges edgeStart[n] .. edgeStart[n + 1] - 1 (sorted by byte). */
  readonly edgeStart: Int32Array;
  readonly edgeByte: Uint8Array;
  readonly edgeChild: Int32Array;
  /** Tokens whose bytes end at node n: order[tokStart[n]] .. order[tokStart[n + 1] - 1]. */
  readonly tokStart: Int32Array;
  readonly order: Int32Array;
  /** One past the last node of n's subtree. */
  readonly subtreeEnd: Int32Array;
  /** The longest token in bytes. */
  readonly maxDepth: number;
  /**
   * Per node, the ASCII bytes on the edges of its subtree, the edge into it included (4 words of
   * 32 bits per node); and whether any byte there is >= 0x80. A walk uses them to accept a whole
   * subtree at once where the grammar state loops on all of its bytes (inside a string).
   */
  readonly subtreeAscii: Uint32Array;
  readonly subtreeHigh: Uint8Array;
  /** Whether some token in the node's subtree is not well-formed UTF-8 (a stray, overlong or surrogate sequence). */
  readonly subtreeBadUtf8: Uint8Array;

  constructor(tokens: readonly Uint8Array[]) {
    this.vocabSize = tokens.length;
    // Sorting the byte strings makes preorder fall out of one pass: each token shares its longest
    // common prefix with the one before it and adds new nodes for the rest.
    const ids: number[] = [];
    for (let i = 0; i < tokens.length; i++) if (tokens[i].length > 0) ids.push(i);
    ids.sort((a, b) => Buffer.compare(tokens[a], tokens[b]) || a - b);
    let total = 1;
    for (const id of ids) total += tokens[id].length;
    const parent = new Int32Array(total);
    const utf8 = new Uint8Array(total); // the UTF-8 decoder's state after the path to each node
    const byte = new Uint8Array(total);
    const tokStart = new Int32Array(total + 1);
    const subtreeEnd = new Int32Array(total);
    const order = new Int32Array(ids.length);
    const path = [0]; // path[d] = node at depth d of the previous token
    let prev: Uint8Array = new Uint8Array(0);
    let nodes = 1;
    let placed = 0;
    let maxDepth = 0;
    for (const id of ids) {
      const t = tokens[id];
      let lcp = 0;
      while (lcp < t.length && lcp < prev.length && t[lcp] === prev[lcp]) lcp++;
      while (path.length - 1 > lcp) subtreeEnd[path.pop() as number] = nodes;
      for (let d = lcp; d < t.length; d++) {
        const n = nodes++;
        parent[n] = path[path.length - 1];
        byte[n] = t[d];
        utf8[n] = utf8Next(utf8[parent[n]], t[d]);
        tokStart[n] = placed;
        path.push(n);
      }
      order[placed++] = id;
      prev = t;
      maxDepth = Math.max(maxDepth, t.length);
    }
    while (path.length > 0) subtreeEnd[path.pop() as number] = nodes;
    tokStart[nodes] = placed;
    // Tokens of node n were placed right after n was created, before any node after it.
    this.tokStart = tokStart.slice(0, nodes + 1);
    // Children grouped by parent: preorder keeps them in byte order within each group.
    const edgeStart = new Int32Array(nodes + 1);
    for (let n = 1; n < nodes; n++) edgeStart[parent[n] + 1]++;
    for (let n = 0; n < nodes; n++) edgeStart[n + 1] += edgeStart[n];
    const fill = edgeStart.slice(0, nodes);
    const edgeByte = new Uint8Array(nodes - 1);
    const edgeChild = new Int32Array(nodes - 1);
    for (let n = 1; n < nodes; n++) {
      const e = fill[parent[n]]++;
      edgeByte[e] = byte[n];
      edgeChild[e] = n;
    }
    const sub = new Uint32Array(nodes * 4);
    const high = new Uint8Array(nodes);
    const bad = new Uint8Array(nodes);
    for (let n = nodes - 1; n >= 1; n--) {
      if (utf8[n] === BAD) bad[n] = 1;
      bad[parent[n]] |= bad[n];
      const b = byte[n];
      if (b >= 0x80) high[n] = 1;
      else sub[n * 4 + (b >> 5)] |= 1 << (b & 31);
      const p = parent[n];
      for (let k = 0; k < 4; k++) sub[p * 4 + k] |= sub[n * 4 + k];
      high[p] |= high[n];
    }
    this.subtreeAscii = sub;
    this.subtreeHigh = high;
    this.subtreeBadUtf8 = bad;
    this.nodeCount = nodes;
    this.edgeStart = edgeStart;
    this.edgeByte = edgeByte;
    this.edgeChild = edgeChild;
    this.order = order;
    this.subtreeEnd = subtreeEnd.slice(0, nodes);
    this.maxDepth = maxDepth;
  }
}

const BAD = 255;

/**
 * A strict UTF-8 decoder as a state machine over bytes: 0 at a character boundary, 1..3
 * continuation bytes left, 4..7 a second byte with a narrowed range (E0: A0-BF, ED: 80-9F,
 * F0: 90-BF, F4: 80-8F — no overlongs, surrogates or code points past U+10FFFF); BAD stays BAD.
 */
function utf8Next(state: number, b: number): number {
  const cont = b >= 0x80 && b <= 0xbf;
  switch (state) {
    case 0:
      if (b < 0x80) return 0;
      if (b >= 0xc2 && b <= 0xdf) return 1;
      if (b === 0xe0) return 4;
      if (b === 0xed) return 5;
      if (b >= 0xe1 && b <= 0xef) return 2;
      if (b === 0xf0) return 6;
      if (b >= 0xf1 && b <= 0xf3) return 3;
      if (b === 0xf4) return 7;
      return BAD;
    case 1:
      return cont ? 0 : BAD;
    case 2:
      return cont ? 1 : BAD;
    case 3:
      return cont ? 2 : BAD;
    case 4:
      return b >= 0xa0 && b <= 0xbf ? 1 : BAD;
    case 5:
      return b >= 0x80 && b <= 0x9f ? 1 : BAD;
    case 6:
      return b >= 0x90 && b <= 0xbf ? 2 : BAD;
    case 7:
      return b >= 0x80 && b <= 0x8f ? 2 : BAD;
    default:
      return BAD;
  }
}
