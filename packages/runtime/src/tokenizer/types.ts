/** What the engine needs from a tokenizer, whatever its kind. */
export interface Tokenizer {
  readonly kind: 'llama2c' | 'spm' | 'hf';
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  /** Token ids for `text`; `bos` prepends the BOS token. */
  encode(text: string, options?: { bos?: boolean }): number[];
  /**
   * Token ids for `text` as ordinary text, no BOS: the text of a special token in it stays those
   * characters (tiktoken's encode_ordinary), so a message cannot write a control token.
   */
  encodeOrdinary(text: string): number[];
  /** Text of a whole sequence (special tokens omitted; no ids: ""). */
  decode(ids: readonly number[]): string;
  /**
   * An incremental decoder for streaming: never splits a UTF-8 character. `prev` is the token
   * before the first one pushed (the prompt's last), so leading-space rules apply as in `decode`.
   */
  streamDecoder(prev?: number): StreamDecoder;
  /** The id of a piece the vocabulary holds whole (special tokens such as `<|start|>`), if any. */
  tokenId?(piece: string): number | undefined;
  /**
   * Each token's bytes as decode() prints them mid-text (control and special tokens: empty), for
   * constrained decoding's token trie. Absent where a tokenizer cannot list them.
   */
  tokenBytes?(): readonly Uint8Array[];
  /**
   * The most UTF-16 code units of input one token stands for (its longest piece, an added token's
   * text, times what the normalizer may shrink), so that a text too long for the context is refused
   * before it is encoded (text-bound.ts); undefined where normalization can shrink text without bound.
   */
  readonly maxCharsPerToken?: number;
  /** Tokens that end a generation (EOS; for llama2.c models also BOS, as run.c stops on it). */
  readonly stopTokens: ReadonlySet<number>;
}

export interface StreamDecoder {
  /** The text `token` completes (possibly "" while a UTF-8 character is incomplete). */
  push(token: number): string;
  /** Whatever is left (an incomplete character becomes U+FFFD). */
  flush(): string;
}
