/**
 * The reasoning of models whose chat templates think in `<think>…</think>` (DeepSeek-R1, Qwen3,
 * QwQ): the text inside the block is the reasoning (the `analysis` channel, as harmony's), the text
 * after it the answer (`final`), as llama.cpp's server splits them into `reasoning_content` and
 * `content`. The block opens the answer, or the prompt already opened it (templates whose
 * generation prompt ends in `<think>`).
 */

const OPEN = '<think>';
const CLOSE = '</think>';

export type ReasoningChannel = 'analysis' | 'final';

/** Whether a chat template's answers may think in `<think>` blocks. */
export function templateThinks(source: string): boolean {
  return source.includes(OPEN) && source.includes(CLOSE);
}

/** Whether a rendered prompt leaves a `<think>` block open for the model to continue. */
export function promptOpensThinking(text: string): boolean {
  const open = text.lastIndexOf(OPEN);
  return open >= 0 && text.indexOf(CLOSE, open) < 0 && text.slice(open + OPEN.length).trim() === '';
}

/** The longest tail of `t` that begins `tag` (held back until the next text says whether it is the tag). */
export function heldTail(t: string, tag: string): number {
  for (let n = Math.min(tag.length - 1, t.length); n > 0; n--) if (tag.startsWith(t.slice(t.length - n))) return n;
  return 0;
}

/**
 * Splits an answer's text, as it streams, into reasoning and answer. push() returns the pieces to
 * pass on, each with its channel; whitespace right after `<think>` and after `</think>` is dropped.
 */
export class ReasoningSplitter {
  /** The reasoning so far (inside the block). */
  reasoning = '';
  /** The answer so far (after the block, or the whole text when there is none). */
  answer = '';
  private state: 'start' | 'think' | 'answer';
  private held = '';
  /** Dropping the whitespace that follows a tag. */
  private trimming: boolean;

  constructor(openInPrompt: boolean) {
    this.state = openInPrompt ? 'think' : 'start';
    this.trimming = openInPrompt;
  }

  /** The channel text goes to now. */
  get channel(): ReasoningChannel {
    return this.state === 'think' ? 'analysis' : 'final';
  }

  push(text: string): Array<[string, ReasoningChannel]> {
    const out: Array<[string, ReasoningChannel]> = [];
    let t = this.held + text;
    this.held = '';
    for (;;) {
      if (this.trimming) {
        const kept = t.trimStart();
        if (!kept) return out;
        t = kept;
        this.trimming = false;
      }
      if (this.state === 'start') {
        const lead = t.trimStart();
        if (lead.startsWith(OPEN)) {
          this.state = 'think';
          this.trimming = true;
          t = lead.slice(OPEN.length);
          continue;
        }
        // Could still become <think>: wait for more.
        if (OPEN.startsWith(lead)) {
          this.held = t;
          return out;
        }
        this.state = 'answer';
      }
      if (this.state === 'think') {
        const at = t.indexOf(CLOSE);
        if (at >= 0) {
          this.emit(out, t.slice(0, at), 'analysis');
          this.state = 'answer';
          this.trimming = true;
          t = t.slice(at + CLOSE.length);
          continue;
        }
        const keep = heldTail(t, CLOSE);
        this.held = t.slice(t.length - keep);
        this.emit(out, t.slice(0, t.length - keep), 'analysis');
        return out;
      }
      this.emit(out, t, 'final');
      return out;
    }
  }

  /** What is held back when the answer ends (an unfinished tag is text). */
  flush(): Array<[string, ReasoningChannel]> {
    const out: Array<[string, ReasoningChannel]> = [];
    this.emit(out, this.held, this.state === 'think' ? 'analysis' : 'final');
    this.held = '';
    return out;
  }

  private emit(out: Array<[string, ReasoningChannel]>, text: string, channel: ReasoningChannel): void {
    if (!text) return;
    if (channel === 'analysis') this.reasoning += text;
    else this.answer += text;
    out.push([text, channel]);
  }
}
