/**
 * Progress of a long command on stderr. In a terminal: one line redrawn in place, with the
 * elapsed time and an ETA. Otherwise (a log file, CI): nothing while it runs, then one summary
 * line, so logs stay readable. Quiet for work that finishes within a second.
 */

/** What Progress writes to: stderr, or a recording stream in tests. */
export type ProgressStream = Pick<NodeJS.WriteStream, 'write' | 'isTTY' | 'columns'>;

/** `42s`, `3m05s`, `1h02m`. */
export function duration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

/** Seconds left at `frac` done after `elapsed` seconds, at the rate so far; undefined while too early to say. */
export function eta(frac: number, elapsed: number): number | undefined {
  if (frac <= 0.01 || elapsed < 1) return undefined;
  return (elapsed * (1 - frac)) / frac;
}

export class Progress {
  private readonly start: number;
  /** Work in phases (quantize: calibrating, searching, …) restarts its count: the ETA is per phase. */
  private phase = '';
  private phaseStart: number;
  private lastDraw = 0;
  private drawn = false;
  private updated = false;
  constructor(
    private readonly label: string,
    private readonly stream: ProgressStream = process.stderr,
    private readonly enabled = true,
    private readonly now: () => number = Date.now,
  ) {
    this.start = now();
    this.phaseStart = this.start;
  }

  update(done: number, total: number, detail = '', phase = ''): void {
    if (!this.enabled || total <= 0) return;
    this.updated = true;
    const t = this.now();
    if (phase !== this.phase) {
      this.phase = phase;
      this.phaseStart = t;
    }
    const frac = Math.min(1, Math.max(0, done / total));
    if (!this.stream.isTTY || t - this.start < 1000) return;
    if (t - this.lastDraw < 100 && frac < 1) return;
    this.lastDraw = t;
    this.drawn = true;
    const width = 30;
    const fill = Math.round(frac * width);
    const left = eta(frac, (t - this.phaseStart) / 1000);
    const times = `${duration((t - this.start) / 1000)}${left === undefined || frac >= 1 ? '' : `, eta ${duration(left)}`}`;
    const what = [phase, detail].filter(Boolean).join(' ');
    const line = `${this.label} [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${(frac * 100).toFixed(0).padStart(3)}% ${times}  ${what}`;
    const cols = this.stream.columns ?? 100;
    this.stream.write(`\r${line.slice(0, cols - 1)}\x1b[K`);
  }

  /** Ends the bar's line in a terminal; elsewhere writes the one summary line (`extra`: what was done). */
  done(extra = ''): void {
    if (!this.enabled) return;
    const secs = (this.now() - this.start) / 1000;
    if (this.drawn) this.stream.write('\n');
    else if (!this.stream.isTTY && this.updated && secs >= 1)
      this.stream.write(`${this.label}: done in ${secs.toFixed(1)} s${extra ? `, ${extra}` : ''}\n`);
  }
}
