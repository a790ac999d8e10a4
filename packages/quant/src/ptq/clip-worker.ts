/** Worker entry of ClipSearchPool: the clip search over a range of rows of a shared matrix. */
import { parentPort } from 'node:worker_threads';
import { searchClip, type QuantTarget } from './quantize.js';

export interface ClipJob {
  id: number;
  buffer: SharedArrayBuffer;
  rowStart: number;
  rowEnd: number;
  cols: number;
  target: QuantTarget;
}

parentPort?.on('message', (job: ClipJob) => {
  const rows = job.rowEnd - job.rowStart;
  const values = new Float32Array(job.buffer, job.rowStart * job.cols * 4, rows * job.cols);
  const ratios = searchClip(values, rows, job.cols, job.target);
  parentPort?.postMessage({ id: job.id, ratios }, [ratios.buffer as ArrayBuffer]);
});
