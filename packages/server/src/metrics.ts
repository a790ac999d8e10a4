/**
 * Prometheus text exposition (format 0.0.4), written out: counters, gauges read at scrape time, and
 * histograms with fixed buckets. Small enough that a client library would be more code to audit
 * than this.
 */

type Labels = Record<string, string>;

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function labelText(labels: Labels, extra?: [string, string]): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
  if (extra) parts.push(`${extra[0]}="${escapeLabel(extra[1])}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

function num(v: number): string {
  if (v === Number.POSITIVE_INFINITY) return '+Inf';
  if (v === Number.NEGATIVE_INFINITY) return '-Inf';
  return Number.isNaN(v) ? 'NaN' : String(v);
}

interface Metric {
  readonly name: string;
  render(): string;
}

export class Counter implements Metric {
  private readonly values = new Map<string, { labels: Labels; value: number }>();
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}

  inc(labels: Labels = {}, by = 1): void {
    const key = JSON.stringify(labels);
    const row = this.values.get(key);
    if (row) row.value += by;
    else this.values.set(key, { labels, value: by });
  }

  get(labels: Labels = {}): number {
    return this.values.get(JSON.stringify(labels))?.value ?? 0;
  }

  render(): string {
    const rows = [...this.values.values()].map((r) => `${this.name}${labelText(r.labels)} ${num(r.value)}`);
    // A counter with no labels exists from the start at 0.
    if (rows.length === 0) rows.push(`${this.name} 0`);
    return [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`, ...rows].join('\n');
  }
}

/** A gauge whose value is read when scraped (queue depth, active sequences). */
export class Gauge implements Metric {
  constructor(
    readonly name: string,
    readonly help: string,
    private readonly read: () => number,
  ) {}

  render(): string {
    return [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} gauge`, `${this.name} ${num(this.read())}`].join('\n');
  }
}

export class Histogram implements Metric {
  private readonly counts: number[];
  private sum = 0;
  private count = 0;
  constructor(
    readonly name: string,
    readonly help: string,
    /** Upper bounds, ascending; +Inf is implied. */
    readonly buckets: readonly number[],
  ) {
    this.counts = new Array(buckets.length).fill(0);
  }

  /** Records `value` `times` times (a request's mean step time once per decoded token). */
  observe(value: number, times = 1): void {
    if (!Number.isFinite(value) || times <= 0) return;
    this.sum += value * times;
    this.count += times;
    for (let i = 0; i < this.buckets.length; i++) if (value <= this.buckets[i]) this.counts[i] += times;
  }

  render(): string {
    const rows = this.buckets.map((b, i) => `${this.name}_bucket${labelText({}, ['le', num(b)])} ${this.counts[i]}`);
    rows.push(`${this.name}_bucket{le="+Inf"} ${this.count}`, `${this.name}_sum ${num(this.sum)}`, `${this.name}_count ${this.count}`);
    return [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`, ...rows].join('\n');
  }
}

export class Registry {
  private readonly metrics: Metric[] = [];

  add<M extends Metric>(m: M): M {
    this.metrics.push(m);
    return m;
  }

  render(): string {
    return `${this.metrics.map((m) => m.render()).join('\n')}\n`;
  }
}

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/**
 * Event-loop lag: a timer that should fire every `intervalMs` notes how late it ran. A server whose
 * loop stalls (tokenizing a huge prompt, a synchronous step) shows it here before clients do.
 */
export class EventLoopLag {
  private timer: NodeJS.Timeout | undefined;
  constructor(
    private readonly histogram: Histogram,
    private readonly intervalMs = 10,
  ) {}

  start(): void {
    let last = performance.now();
    this.timer = setInterval(() => {
      const now = performance.now();
      this.histogram.observe(Math.max(0, now - last - this.intervalMs) / 1000);
      last = now;
    }, this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

/**
 * Parses Prometheus text into `name{labels}` → value (tests and the load benchmark read /metrics
 * with it).
 */
export function parsePrometheus(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    const v = line.slice(at + 1);
    out.set(line.slice(0, at), v === '+Inf' ? Number.POSITIVE_INFINITY : Number(v));
  }
  return out;
}
