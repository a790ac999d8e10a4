/**
 * The clip search on worker threads: a matrix is copied once into shared memory and each
 * worker searches a contiguous range of rows (groups never cross rows, so the ratios are
 * exactly the single-threaded search's). Small matrices, one thread, or a missing worker
 * file (running from source) fall back to the search on the calling thread.
 */
import { existsSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { ClipJob } from './clip-worker.js';
import { searchClip, type QuantTarget } from './quantize.js';

/** Below this many weights the search stays on the calling thread (a worker round trip costs more). */
export const PARALLEL_MIN_WEIGHTS = 1 << 18;

export interface ClipSearchPoolOptions {
  /** Worker threads; default: the machine's available parallelism. 1 searches on the calling thread. */
  threads?: number;
  /** The built worker (dist/clip-worker.js); found beside this module by default. */
  workerUrl?: URL;
}

function defaultWorkerUrl(): URL | null {
  try {
    const url = new URL('./clip-worker.js', import.meta.url);
    return existsSync(fileURLToPath(url)) ? url : null;
  } catch {
    return null;
  }
}

export class ClipSearchPool {
  readonly threads: number;
  private readonly url: URL | null;
  private workers: Worker[] = [];
  private nextId = 0;
  private readonly pending = new Map<number, { resolve: (r: Float32Array) => void; reject: (e: Error) => void }>();
  /**
   * One shared buffer, grown as needed and reused by every search: a fresh one per matrix would
   * live until every worker's garbage collector let go of it, which idle workers rarely run.
   */
  private shared: SharedArrayBuffer | null = null;
  /** Searches share the buffer, so they run one after another. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(options: ClipSearchPoolOptions = {}) {
    this.threads = Math.max(1, Math.floor(options.threads ?? availableParallelism()));
    this.url = options.workerUrl ?? defaultWorkerUrl();
  }

  /** Whether searches can run on workers (more than one thread and the worker file present). */
  get parallel(): boolean {
    return this.threads > 1 && this.url !== null;
  }

  private spawn(): Worker[] {
    if (this.workers.length === 0 && this.url) {
      for (let i = 0; i < this.threads; i++) {
        const w = new Worker(this.url);
        w.unref(); // an unclosed pool never keeps the process alive
        w.on('message', (m: { id: number; ratios: Float32Array }) => {
          this.pending.get(m.id)?.resolve(m.ratios);
          this.pending.delete(m.id);
        });
        w.on('error', (e) => {
          for (const p of this.pending.values()) p.reject(e);
          this.pending.clear();
        });
        this.workers.push(w);
      }
    }
    return this.workers;
  }

  /** Per group, the clip ratio of the grid minimizing the reconstruction error: {@link searchClip}, split by rows. */
  async searchClip(values: Float32Array, rows: number, cols: number, t: QuantTarget): Promise<Float32Array> {
    if (!this.parallel || rows < 2 || rows * cols < PARALLEL_MIN_WEIGHTS) return searchClip(values, rows, cols, t);
    const run = this.queue.then(() => this.searchOnWorkers(values, rows, cols, t));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async searchOnWorkers(values: Float32Array, rows: number, cols: number, t: QuantTarget): Promise<Float32Array> {
    const workers = this.spawn();
    if (!this.shared || this.shared.byteLength < rows * cols * 4) this.shared = new SharedArrayBuffer(rows * cols * 4);
    const shared = new Float32Array(this.shared, 0, rows * cols);
    shared.set(values.subarray(0, rows * cols));
    const G = t.quant.granularity === 'per_row' ? cols : t.quant.group_size;
    const gpr = Math.ceil(cols / G);
    const n = Math.min(workers.length, rows);
    const jobs: Array<Promise<Float32Array>> = [];
    for (let i = 0; i < n; i++) {
      const job: ClipJob = {
        id: this.nextId++,
        buffer: shared.buffer as SharedArrayBuffer,
        rowStart: Math.floor((rows * i) / n),
        rowEnd: Math.floor((rows * (i + 1)) / n),
        cols,
        target: { dtype: t.dtype, quant: { ...t.quant } },
      };
      jobs.push(new Promise((resolve, reject) => this.pending.set(job.id, { resolve, reject })));
      workers[i].postMessage(job);
    }
    const parts = await Promise.all(jobs);
    const out = new Float32Array(rows * gpr);
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  async close(): Promise<void> {
    const ws = this.workers;
    this.workers = [];
    this.shared = null;
    await Promise.all(ws.map((w) => w.terminate()));
  }
}
