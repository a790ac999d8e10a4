/**
 * A one-line progress bar on stderr when it is a terminal; otherwise a line every 10%.
 * Quiet for work that finishes within a second.
 */
export class Progress {
  private lastDecile = -1;
  private lastDraw = 0;
  private drawn = false;
  private readonly start = Date.now();
  constructor(
    private readonly label: string,
    private readonly stream: NodeJS.WriteStream = process.stderr,
    private readonly enabled = true,
  ) {}

  update(done: number, total: number, detail = ''): void {
    if (!this.enabled || total <= 0) return;
    const frac = Math.min(1, done / total);
    if (Date.now() - this.start < 1000) return;
    this.drawn = true;
    if (this.stream.isTTY) {
      const now = Date.now();
      if (now - this.lastDraw < 100 && frac < 1) return;
      this.lastDraw = now;
      const width = 30;
      const fill = Math.round(frac * width);
      const cols = this.stream.columns ?? 100;
      const line = `${this.label} [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${(frac * 100).toFixed(0).padStart(3)}% ${detail}`;
      this.stream.write(`\r${line.slice(0, cols - 1).padEnd(Math.min(cols - 1, line.length))}\x1b[K`);
    } else {
      const decile = Math.floor(frac * 10);
      if (decile === this.lastDecile) return;
      this.lastDecile = decile;
      this.stream.write(`${this.label}: ${decile * 10}% ${detail}\n`);
    }
  }

  done(): void {
    if (this.drawn && this.stream.isTTY) this.stream.write('\n');
  }
}
