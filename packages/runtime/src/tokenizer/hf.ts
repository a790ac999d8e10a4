/**
 * Hugging Face tokenizer.json files, through the tokenizers library (@huggingface/tokenizers,
 * pure JavaScript). Streaming decode re-decodes the generated ids after the prompt's last token
 * and releases only text that no longer ends in an incomplete character.
 */
import { Tokenizer as HfLibTokenizer } from '@huggingface/tokenizers';
import { gpt2ByteChars } from '@ie/format';
import { IeRuntimeError } from '../errors.js';
import { hfMaxCharsPerToken } from './text-bound.js';
import type { StreamDecoder, Tokenizer } from './types.js';

/**
 * A library error's message for a one-line report: its first line, control characters dropped,
 * at most 120 characters (the library may name a value from the file; never more than that).
 */
export function libraryMessage(e: unknown): string {
  const raw = e instanceof Error ? e.message : String(e);
  const line = (raw.split('\n')[0] ?? '').replace(/[\u0000-\u001f\u007f-\u009f]/g, '?');
  return line.length > 120 ? `${line.slice(0, 119)}…` : line || 'no message';
}

/** Runs a library call; what it throws becomes IE_TOKENIZER_INVALID (a tokenizer.json the library accepted but cannot run). */
function guarded<T>(what: string, f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof IeRuntimeError) throw e;
    throw new IeRuntimeError('IE_TOKENIZER_INVALID', `the tokenizer.json fails to ${what}: ${libraryMessage(e)}`, { cause: e });
  }
}

/**
 * The library's ByteFallback decoder strips a leading U+FEFF (its TextDecoder reads it as a
 * byte-order mark), where Hugging Face's Rust tokenizers print it as the text it is: its decoders
 * (a Sequence's too) get TextDecoders that keep it. A decoder shaped otherwise is left as it is.
 */
function keepByteOrderMarks(decoder: unknown, depth = 0): void {
  // The library's decoders are callable objects (functions with fields).
  if ((typeof decoder !== 'object' && typeof decoder !== 'function') || decoder === null || depth > 8) return;
  const d = decoder as { text_decoder?: { encoding?: unknown; fatal?: unknown; ignoreBOM?: unknown }; decoders?: unknown };
  // By shape, not instanceof: the library may see another realm's TextDecoder (vitest's).
  if (d.text_decoder?.ignoreBOM === false && d.text_decoder.encoding === 'utf-8')
    d.text_decoder = new TextDecoder('utf-8', { fatal: d.text_decoder.fatal === true, ignoreBOM: true });
  if (Array.isArray(d.decoders)) for (const x of d.decoders) keepByteOrderMarks(x, depth + 1);
}

export class HfTokenizer implements Tokenizer {
  readonly kind = 'hf';
  readonly vocabSize: number;
  readonly stopTokens: ReadonlySet<number>;
  /** Whether the tokenizer's own post-processor starts a sequence with BOS (Llama: yes; Qwen2: no). */
  readonly addsBos: boolean;
  readonly maxCharsPerToken: number | undefined;
  private readonly lib: HfLibTokenizer;
  private bytesOfTokens: Uint8Array[] | undefined;
  private ordinary: HfLibTokenizer | undefined;

  constructor(
    private readonly json: Record<string, unknown>,
    readonly bosId: number,
    readonly eosId: number,
    options: {
      /** Whether encode() starts with BOS by default; unset: what the tokenizer's post-processor does. */
      addsBos?: boolean;
      /**
       * transformers' clean_up_tokenization_spaces (" 's" -> "'s", " ." -> "." on decode). Off by
       * default, as llama.cpp decodes and as gpt-oss's and Llama 2's tokenizer_config.json say: it
       * drops spaces the model wrote ("foo\n    .bar()" loses one), and a streamed text cannot take
       * back a space it has already released.
       */
      cleanUpSpaces?: boolean;
    } = {},
  ) {
    const { addsBos, cleanUpSpaces = false } = options;
    this.lib = new HfLibTokenizer(json as never, { clean_up_tokenization_spaces: cleanUpSpaces } as never);
    keepByteOrderMarks((this.lib as unknown as { decoder?: unknown }).decoder);
    const model = json.model as { vocab?: Record<string, number> } | undefined;
    const added = (json.added_tokens as Array<{ id: number }> | undefined) ?? [];
    this.vocabSize = Math.max(Object.keys(model?.vocab ?? {}).length, ...added.map((t) => t.id + 1));
    this.stopTokens = new Set([eosId]);
    this.maxCharsPerToken = hfMaxCharsPerToken(json);
    const probe = (add: boolean) => Array.from(this.lib.encode('a', { add_special_tokens: add }).ids as number[]);
    this.addsBos = addsBos ?? (probe(true)[0] === bosId && probe(false)[0] !== bosId);
  }

  /** `bos` unset follows the tokenizer's own post-processing (BOS where it adds one); true or false forces it. */
  encode(text: string, options: { bos?: boolean } = {}): number[] {
    const ids = guarded('encode', () => Array.from(this.lib.encode(text, { add_special_tokens: false }).ids as number[]));
    return (options.bos ?? this.addsBos) ? [this.bosId, ...ids] : ids;
  }

  /**
   * The library matches added tokens anywhere in a text; ordinary text goes through a second
   * instance without the special ones (built on first use), so "<|end|>" in a message is its
   * characters' tokens, cut by the pre-tokenizer as the text around it is (tiktoken's
   * encode_ordinary). Cutting the text at such tokens instead split the pre-tokenizer's pieces
   * ("<|'s|>" and "<|/end|>" took other ids than OpenAI's renderer gives).
   */
  encodeOrdinary(text: string): number[] {
    if (text.length === 0) return [];
    this.ordinary ??= guarded('build its ordinary-text encoder', () => {
      const added = (this.json.added_tokens as Array<{ special?: boolean }> | undefined) ?? [];
      return new HfLibTokenizer({ ...this.json, added_tokens: added.filter((t) => !t.special) } as never, {} as never);
    });
    const lib = this.ordinary;
    return guarded('encode', () => Array.from(lib.encode(text, { add_special_tokens: false }).ids as number[]));
  }

  tokenId(piece: string): number | undefined {
    return guarded('look up a token', () => this.lib.token_to_id(piece) ?? undefined);
  }

  decode(ids: readonly number[]): string {
    // The library refuses an empty list; no tokens are no text.
    if (ids.length === 0) return '';
    return guarded('decode', () => this.lib.decode([...ids], { skip_special_tokens: true }));
  }

  /**
   * Each token's bytes as decode() prints it: byte-level pieces (a ByteLevel decoder) mapped back
   * through GPT-2's byte-to-character table; otherwise U+2581 as a space and `<0xHH>` as its byte
   * (the Replace + ByteFallback decoders of Llama-style tokenizer.json); special added tokens empty.
   */
  tokenBytes(): readonly Uint8Array[] {
    if (this.bytesOfTokens) return this.bytesOfTokens;
    const model = (this.json.model ?? {}) as { vocab?: Record<string, number> | Array<[string, number]> };
    const added = (this.json.added_tokens as Array<{ id: number; content: string; special?: boolean }> | undefined) ?? [];
    const decoder = JSON.stringify(this.json.decoder ?? null);
    const byteLevel = decoder.includes('"ByteLevel"');
    const byteFallback = decoder.includes('"ByteFallback"');
    const pieces: string[] = new Array(this.vocabSize).fill('');
    // Unigram models list [piece, score] pairs; BPE and WordLevel map piece -> id.
    if (Array.isArray(model.vocab)) for (const [i, [p]] of model.vocab.entries()) pieces[i] = p;
    else for (const [p, id] of Object.entries(model.vocab ?? {})) if (id >= 0 && id < pieces.length) pieces[id] = p;
    const enc = new TextEncoder();
    const fromChar = new Map(gpt2ByteChars().map((c, b) => [c, b]));
    const out = pieces.map((p) => {
      if (byteLevel) {
        const bytes: number[] = [];
        for (const ch of p) {
          const b = fromChar.get(ch);
          if (b !== undefined) bytes.push(b);
          else bytes.push(...enc.encode(ch));
        }
        return Uint8Array.from(bytes);
      }
      const m = byteFallback ? /^<0x([0-9A-Fa-f]{2})>$/.exec(p) : null;
      return m ? Uint8Array.of(Number.parseInt(m[1], 16)) : enc.encode(p.replaceAll('\u2581', ' '));
    });
    for (const t of added) if (t.id >= 0 && t.id < out.length) out[t.id] = t.special ? new Uint8Array(0) : enc.encode(t.content);
    this.bytesOfTokens = out;
    return out;
  }

  /**
   * Streaming in O(1) decodes per token (text-generation-inference's offsets): only the ids since
   * the previous clean boundary are decoded, with the chunk before them as context (for the
   * decoders' leading-space rules); a chunk is released once it no longer ends in U+FFFD (a
   * character whose remaining bytes have not arrived yet). Re-decoding everything per token made
   * 4,000 tokens quadratic.
   */
  streamDecoder(prev = -1): StreamDecoder {
    const lib = this.lib;
    const ids: number[] = prev >= 0 ? [prev] : [];
    const decode = (from: number, to: number) =>
      to > from ? guarded('decode', () => lib.decode(ids.slice(from, to), { skip_special_tokens: true })) : '';
    let prefixOffset = 0;
    let readOffset = ids.length;
    const take = (final: boolean): string => {
      const prefix = decode(prefixOffset, readOffset);
      const text = decode(prefixOffset, ids.length);
      if (text.length <= prefix.length || (!final && text.endsWith('\uFFFD'))) return '';
      prefixOffset = readOffset;
      readOffset = ids.length;
      return text.slice(prefix.length);
    };
    return {
      push(token: number): string {
        ids.push(token);
        return take(false);
      },
      flush(): string {
        return take(true);
      },
    };
  }
}
