/**
 * Hugging Face tokenizer.json files, through the tokenizers library (@huggingface/tokenizers,
 * pure JavaScript). Streaming decode re-decodes the generated ids after the prompt's last token
 * and releases only text that no longer ends in an incomplete character.
 */
import { Tokenizer as HfLibTokenizer } from '@huggingface/tokenizers';
import { IeRuntimeError } from '../errors.js';
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

export class HfTokenizer implements Tokenizer {
  readonly kind = 'hf';
  readonly vocabSize: number;
  readonly stopTokens: ReadonlySet<number>;
  /** Whether the tokenizer's own post-processor starts a sequence with BOS (Llama: yes; Qwen2: no). */
  readonly addsBos: boolean;
  private readonly lib: HfLibTokenizer;

  constructor(
    json: Record<string, unknown>,
    readonly bosId: number,
    readonly eosId: number,
    options: {
      /** Whether encode() starts with BOS by default; unset: what the tokenizer's post-processor does. */
      addsBos?: boolean;
      /** transformers' clean_up_tokenization_spaces (" 's" -> "'s" on decode); the library's default is true. */
      cleanUpSpaces?: boolean;
    } = {},
  ) {
    const { addsBos, cleanUpSpaces } = options;
    this.lib = new HfLibTokenizer(
      json as never,
      (cleanUpSpaces === undefined ? {} : { clean_up_tokenization_spaces: cleanUpSpaces }) as never,
    );
    const model = json.model as { vocab?: Record<string, number> } | undefined;
    const added = (json.added_tokens as Array<{ id: number }> | undefined) ?? [];
    this.vocabSize = Math.max(Object.keys(model?.vocab ?? {}).length, ...added.map((t) => t.id + 1));
    this.stopTokens = new Set([eosId]);
    const probe = (add: boolean) => Array.from(this.lib.encode('a', { add_special_tokens: add }).ids as number[]);
    this.addsBos = addsBos ?? (probe(true)[0] === bosId && probe(false)[0] !== bosId);
  }

  /** `bos` unset follows the tokenizer's own post-processing (BOS where it adds one); true or false forces it. */
  encode(text: string, options: { bos?: boolean } = {}): number[] {
    const ids = guarded('encode', () => Array.from(this.lib.encode(text, { add_special_tokens: false }).ids as number[]));
    return (options.bos ?? this.addsBos) ? [this.bosId, ...ids] : ids;
  }

  tokenId(piece: string): number | undefined {
    return guarded('look up a token', () => this.lib.token_to_id(piece) ?? undefined);
  }

  decode(ids: readonly number[]): string {
    return guarded('decode', () => this.lib.decode([...ids], { skip_special_tokens: true }));
  }

  streamDecoder(prev = -1): StreamDecoder {
    const lib = this.lib;
    const context = prev >= 0 ? [prev] : [];
    const prefix = context.length ? guarded('decode', () => lib.decode(context, { skip_special_tokens: true })) : '';
    const ids: number[] = [];
    let emitted = 0;
    const current = () => guarded('decode', () => lib.decode([...context, ...ids], { skip_special_tokens: true })).slice(prefix.length);
    return {
      push(token: number): string {
        ids.push(token);
        const text = current();
        // A trailing U+FFFD may be a character whose remaining bytes have not arrived yet.
        const safe = text.endsWith('\uFFFD') ? text.slice(0, text.length - 1) : text;
        if (safe.length <= emitted) return '';
        const out = safe.slice(emitted);
        emitted = safe.length;
        return out;
      },
      flush(): string {
        const text = current();
        const out = text.slice(emitted);
        emitted = text.length;
        return out;
      },
    };
  }
}
