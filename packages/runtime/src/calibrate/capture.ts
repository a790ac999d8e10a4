/**
 * Stage 2: the FP model (as stored) over the calibration sequences, one chunk per sequence,
 * keeping every projection's input. Per site: the rows the gate judges on (up to GATE_ROWS,
 * evenly spaced over all positions) and each channel's mean |x| over every position. The FP
 * logits of every position are kept for the end-to-end comparison when they fit a budget.
 */
import { captureConsumers, type CaptureSite, type Forward } from '../forward.js';
import type { ProgressFn } from './types.js';

/** Calibration rows kept for the per-tensor gate (evenly spaced over all positions). */
export const GATE_ROWS = 512;
/** FP logits of the calibration run are kept up to this size; past it the FP model runs again during judging. */
export const LOGITS_BUDGET_BYTES = 256 * 2 ** 20;

/** What the calibration run kept of one capture site. */
export interface SiteData {
  layer: number;
  site: CaptureSite;
  /** The matrices that read this site (forward.ts's table). */
  consumers: string[];
  width: number;
  /** Gate rows × width. */
  rows: Float32Array;
  /** Mean |x| per channel over all calibration positions. */
  meanAbs: Float64Array;
}

export interface Captured {
  sites: SiteData[];
  /** Gate rows per site. */
  gateN: number;
  /** The FP logits of every position in order, or null when they exceed the budget (the end-to-end stage runs the FP model again). */
  fpLogits: Float32Array[] | null;
}

/** The (sequence, row) of each gate row: `want` positions evenly spaced over all sequences' positions. */
export function gateRowPicks(lengths: readonly number[], want: number): Array<[number, number]> {
  const total = lengths.reduce((a, n) => a + n, 0);
  const stride = Math.max(1, total / want);
  const keep: Array<[number, number]> = [];
  for (let i = 0, pos = 0; i < lengths.length; i++)
    for (let r = 0; r < lengths[i]; r++, pos++) if (Math.floor(keep.length * stride) === pos) keep.push([i, r]);
  return keep;
}

/** Whether the FP logits of `positions` positions fit `budget` bytes. */
export function logitsFit(positions: number, vocab: number, budget: number): boolean {
  return positions * vocab * 4 <= budget;
}

/** Runs `forward` (built with capture) over `seqs` and keeps what the later stages measure with. */
export function captureActivations(
  forward: Forward,
  seqs: readonly number[][],
  o: { gateRows: number; keepLogits: boolean; progress: ProgressFn },
): Captured {
  const c = forward.config;
  const total = seqs.reduce((a, s) => a + s.length, 0);
  const keep = gateRowPicks(
    seqs.map((s) => s.length),
    o.gateRows,
  );
  const sites: SiteData[] = forward.captures.map((cap) => ({
    layer: cap.layer,
    site: cap.site,
    consumers: captureConsumers(c, cap.site, cap.layer),
    width: cap.width,
    rows: new Float32Array(keep.length * cap.width),
    meanAbs: new Float64Array(cap.width),
  }));
  const fpLogits: Float32Array[] | null = o.keepLogits ? [] : null;
  let kept = 0;
  for (let i = 0; i < seqs.length; i++) {
    forward.runSync(seqs[i], 0);
    const n = seqs[i].length;
    if (fpLogits) for (let r = 0; r < n; r++) fpLogits.push(forward.logits.slice(r * c.vocab_size, (r + 1) * c.vocab_size));
    forward.captures.forEach((cap, j) => {
      const s = sites[j];
      for (let k = 0; k < n * cap.width; k++) s.meanAbs[k % cap.width] += Math.abs(cap.data[k]);
    });
    for (; kept < keep.length && keep[kept][0] === i; kept++) {
      const r = keep[kept][1];
      forward.captures.forEach((cap, j) => {
        sites[j].rows.set(cap.data.subarray(r * cap.width, (r + 1) * cap.width), kept * cap.width);
      });
    }
    o.progress({ stage: 'calibrating', done: i + 1, total: seqs.length });
  }
  for (const s of sites) for (let k = 0; k < s.width; k++) s.meanAbs[k] /= total;
  return { sites, gateN: keep.length, fpLogits };
}
