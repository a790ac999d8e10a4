import type { ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runIe } from '@ie/testing';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startIe } from './serve.testing.js';

const running: ChildProcess[] = [];
afterAll(() => {
  for (const p of running) if (p.exitCode === null) p.kill('SIGKILL');
});

const PROMPT = 'Once upon a time';

describe('ie serve', () => {
  let model = '';
  beforeAll(() => {
    model = join(mkdtempSync(join(tmpdir(), 'ie-cli-serve-')), 'tiny');
    expect(runIe(['synth', '--preset', 'tiny', '--seed', '3', '--out-dir', model]).code).toBe(0);
  });

  it("listens on loopback before the model loads, answers with ie generate's greedy text, and exits 0 on SIGTERM after a graceful shutdown", async () => {
    const gen = runIe(['generate', model, PROMPT, '-n', '10', '--temperature', '0', '-t', '1', '--json']);
    expect(gen.code, gen.err).toBe(0);
    const want = JSON.parse(gen.out) as { text: string; tokens: number[] };
    const ie = startIe(['serve', model, '--port', '0', '-t', '1']);
    running.push(ie.proc);
    const listening = (await ie.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/))[1];
    const url = (await ie.waitFor(/ready at (http:\/\/127\.0\.0\.1:\d+)\/v1/))[1];
    expect(url).toBe(listening);
    expect((await fetch(`${url}/health`)).status).toBe(200);
    // The model id is the directory's name unless --model-name says otherwise.
    const models = (await (await fetch(`${url}/v1/models`)).json()) as { data: Array<{ id: string }> };
    expect(models.data.map((m) => m.id)).toEqual(['tiny']);
    const r = await fetch(`${url}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'tiny', prompt: PROMPT, max_tokens: 10, temperature: 0 }),
    });
    const body = (await r.json()) as { choices: Array<{ text: string }>; usage: { completion_tokens: number } };
    expect(body.choices[0].text).toBe(want.text);
    expect(body.usage.completion_tokens).toBe(want.tokens.length);
    ie.proc.kill('SIGTERM');
    expect(await ie.exited).toBe(0);
    expect(ie.err).toMatch(/SIGTERM: shutting down/);
    await expect(fetch(`${url}/health`)).rejects.toThrow();
  });

  it('answers a body far over --body-limit with its 413, read and dropped, not a connection cut under the client', async () => {
    const ie = startIe(['serve', model, '--port', '0', '-t', '1']);
    running.push(ie.proc);
    const url = (await ie.waitFor(/ready at (http:\/\/127\.0\.0\.1:\d+)\/v1/))[1];
    // 1 MiB by default; the server in its own process (in one process with the client, the old cut went unseen).
    for (const mb of [2, 8]) {
      const r = await fetch(`${url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'tiny', prompt: 'x'.repeat(mb << 20) }),
      });
      expect(r.status).toBe(413);
      expect(((await r.json()) as { error: { code: string } }).error.code).toBe('request_too_large');
    }
    expect((await fetch(`${url}/health`)).status).toBe(200);
    ie.proc.kill('SIGTERM');
    expect(await ie.exited).toBe(0);
  });

  it('--api-key (or IE_API_KEY) guards every route but /health', async () => {
    const ie = startIe(['serve', model, '--port', '0', '-t', '1'], { ...process.env, IE_API_KEY: 'a-long-enough-key' });
    running.push(ie.proc);
    const url = (await ie.waitFor(/ready at (http:\/\/127\.0\.0\.1:\d+)\/v1/))[1];
    expect((await fetch(`${url}/v1/models`)).status).toBe(401);
    expect((await fetch(`${url}/v1/models`, { headers: { authorization: 'Bearer a-long-enough-key' } })).status).toBe(200);
    expect((await fetch(`${url}/health`)).status).toBe(200);
    ie.proc.kill('SIGINT');
    expect(await ie.exited).toBe(0);
    const short = runIe(['serve', model, '--api-key', 'short']);
    expect([short.code, short.err]).toEqual([2, expect.stringMatching(/at least 8 characters/)]);
  });

  it('bad flags exit 2; a model that does not load ends the server with its error (exit 3)', async () => {
    expect(runIe(['serve', model, '--port', '70000']).code).toBe(2);
    expect(runIe(['serve', model, '--parallel', '0']).code).toBe(2);
    expect(runIe(['serve']).code).toBe(2);
    const missing = runIe(['serve', join(model, 'nope'), '--port', '0']);
    expect(missing.code).toBe(3);
    expect(missing.err).toMatch(/listening on/);
    expect(missing.err).toMatch(/\[[A-Z_]+\]$/m);
  });
});
