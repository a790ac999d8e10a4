import { describe, expect, it } from 'vitest';
import { Progress, duration, eta, type ProgressStream } from './progress.js';

function recordingStream(isTTY: boolean): ProgressStream & { text: string } {
  const s = {
    text: '',
    isTTY,
    columns: 120,
    write(chunk: string | Uint8Array) {
      s.text += String(chunk);
      return true;
    },
  };
  return s as ProgressStream & { text: string };
}

describe('Progress', () => {
  it('formats durations and estimates what is left from the rate so far', () => {
    expect([duration(0.4), duration(42), duration(185), duration(3720)]).toEqual(['0s', '42s', '3m05s', '1h02m']);
    expect(eta(0.25, 10)).toBe(30);
    expect(eta(0.005, 10)).toBeUndefined(); // too early to say
  });

  it('in a terminal: a bar redrawn in place with the elapsed time and an ETA, after the first second', () => {
    let t = 0;
    const s = recordingStream(true);
    const p = new Progress('converting', s, true, () => t);
    p.update(1, 10, 'a');
    expect(s.text).toBe(''); // under a second: nothing
    t = 2000;
    p.update(5, 10, 'blk.3');
    expect(s.text).toBe(`\rconverting [${'#'.repeat(15)}${'.'.repeat(15)}]  50% 2s, eta 2s  blk.3\x1b[K`);
    t = 2050;
    p.update(6, 10);
    expect(s.text.split('\r')).toHaveLength(2); // at most ten redraws a second
    t = 3000;
    p.update(10, 10);
    p.done();
    expect(s.text.endsWith(`\rconverting [${'#'.repeat(30)}] 100% 3s  \x1b[K\n`)).toBe(true);
  });

  it("times each phase on its own: a new phase's count restarts, so does its ETA", () => {
    let t = 0;
    const s = recordingStream(true);
    const p = new Progress('quantizing', s, true, () => t);
    p.update(1, 2, '', 'calibrating');
    t = 10_000;
    p.update(1, 4, 'blk.0', 'packing');
    t = 12_000;
    p.update(2, 4, 'blk.1', 'packing');
    expect(s.text.split('\r').at(-1)).toBe(`quantizing [${'#'.repeat(15)}${'.'.repeat(15)}]  50% 12s, eta 2s  packing blk.1\x1b[K`);
  });

  it('elsewhere: nothing while it runs, then one summary line; quiet for sub-second work and when disabled', () => {
    let t = 0;
    const s = recordingStream(false);
    const p = new Progress('synthesizing', s, true, () => t);
    for (let i = 1; i <= 10; i++) {
      t = i * 500;
      p.update(i, 10);
    }
    expect(s.text).toBe('');
    p.done('1.2 GiB');
    expect(s.text).toBe('synthesizing: done in 5.0 s, 1.2 GiB\n');
    const quick = recordingStream(false);
    t = 0;
    const q = new Progress('x', quick, true, () => t);
    q.update(1, 1);
    q.done();
    expect(quick.text).toBe('');
    const off = recordingStream(true);
    const o = new Progress('x', off, false, () => t);
    t = 5000;
    o.update(1, 2);
    o.done();
    expect(off.text).toBe('');
  });
});
