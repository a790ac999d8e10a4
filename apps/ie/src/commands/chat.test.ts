import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runIe } from '@ie/testing';
import { beforeAll, describe, expect, it } from 'vitest';
import { startIe } from './serve.testing.js';

/** The `[N prompt tokens (C cached), M generated, …]` line after each answer. */
const turns = (err: string) =>
  [...err.matchAll(/\[(\d+) prompt tokens \((\d+) cached\), (\d+) generated/g)].map((m) => ({
    prompt: Number(m[1]),
    cached: Number(m[2]),
    generated: Number(m[3]),
  }));

describe('ie chat', () => {
  let oss = '';
  let llama = '';
  let slow = '';
  beforeAll(() => {
    const d = mkdtempSync(join(tmpdir(), 'ie-cli-chat-'));
    oss = join(d, 'oss');
    llama = join(d, 'llama');
    expect(runIe(['synth', '--preset', 'gpt-oss-tiny', '--out-dir', oss]).code).toBe(0);
    expect(runIe(['synth', '--preset', 'tiny', '--out-dir', llama]).code).toBe(0);
    // stories15M's shape: ~250 tokens/s on one thread, and greedy runs on to the context.
    slow = join(d, 'slow');
    expect(runIe(['synth', '--preset', 'stories15m', '--out-dir', slow]).code).toBe(0);
  });

  for (const kind of ['oss', 'llama'] as const) {
    it(`${kind}: keeps the conversation between turns (only the new message is prefilled), /reset starts over, /exit quits`, async () => {
      const ie = startIe(['chat', kind === 'oss' ? oss : llama, '--temperature', '0', '-n', '6', '-t', '1', '--system', 'Be brief.']);
      ie.proc.stdin?.end('hi\nhello again\n/reset\nhi\n/nope\n/exit\n');
      expect(await ie.exited, ie.err).toBe(0);
      const t = turns(ie.err);
      expect(t).toHaveLength(3);
      // The second turn's prompt holds the first turn, which the KV cache still has.
      expect(t[1].prompt).toBeGreaterThan(t[0].prompt);
      expect(t[1].cached).toBeGreaterThan(t[0].prompt / 2);
      // After /reset the same message is the same prompt.
      expect(t[2].prompt).toBe(t[0].prompt);
      expect(ie.err).toContain('(conversation cleared)');
      expect(ie.err).toContain('(unknown command /nope');
    });
  }

  it('Ctrl-C (SIGINT) stops the answer, not the program', async () => {
    const ie = startIe(['chat', slow, '--temperature', '0', '-t', '1', '-c', '1024']);
    await ie.waitFor(/\/exit quits/);
    ie.proc.stdin?.write('tell me a long story\n');
    // No -n: the answer runs to the 1024-position context, seconds on this model.
    await new Promise((r) => setTimeout(r, 300));
    ie.proc.kill('SIGINT');
    await ie.waitFor(/\(stopped\)/);
    // Still running: the next message is answered.
    ie.proc.stdin?.write('hi\n');
    await new Promise((r) => setTimeout(r, 300));
    ie.proc.kill('SIGINT');
    await ie.waitFor(/\(stopped\)[\s\S]*\(stopped\)/);
    ie.proc.stdin?.end('/exit\n');
    expect(await ie.exited).toBe(0);
    expect(turns(ie.err)).toHaveLength(0);
  });
});
