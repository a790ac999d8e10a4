/** Pieces from the scheduler's loop to one consumer: buffered, ended or failed once, iterated once. */
export class Channel<T> implements AsyncIterable<T> {
  private readonly buffer: T[] = [];
  private ended = false;
  private error: unknown;
  private failed = false;
  private wake: (() => void) | undefined;

  push(item: T): void {
    if (this.ended) return;
    this.buffer.push(item);
    this.signal();
  }

  end(): void {
    this.ended = true;
    this.signal();
  }

  /** Ends it with an error, dropping what the consumer has not taken yet (an abort is at once). */
  fail(error: unknown): void {
    if (this.ended) return;
    this.ended = true;
    this.failed = true;
    this.error = error;
    this.buffer.length = 0;
    this.signal();
  }

  get isEnded(): boolean {
    return this.ended;
  }

  private signal(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      const item = this.buffer.shift();
      if (item !== undefined) {
        yield item;
        continue;
      }
      if (this.ended) {
        if (this.failed) throw this.error;
        return;
      }
      await new Promise<void>((r) => (this.wake = r));
    }
  }
}
