#!/usr/bin/env node
// Load benchmark for `ie serve`: CONCURRENCY streamed completions at once through the official
// openai client against a server in its own process, on loopback. Prints errors, tokens, lost or
// duplicated tokens (every streamed text is checked against the same prompt's non-streamed
// greedy text, asked before the load), aggregate tokens/s, time to first token p50/p95 and the
// server's event-loop lag p99 (from its /metrics histogram, the load window only).
//
//   MODEL=/tmp/s15m pnpm bench:serve
//   (MODEL defaults to models/stories15m, made with `ie synth --preset stories15m` if missing)
//   CONCURRENCY=64 MAX_TOKENS=64 PARALLEL=1 THREADS=2 PROMPTS=benchmarks/prompts_10.txt IE_CLI=apps/ie/dist/cli.js
//   (PARALLEL=N: N requests decode together, one forward step for all of them: continuous batching)
//   SERVER_URL=http://127.0.0.1:18080 node benchmarks/serve.mjs   (a server already running, serving
//   the model as "bench", e.g. replicas behind a load balancer: scripts/serve-lb.sh; no lag figure then)
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { refuseToMake, requireModel } from './lib.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
// IE_CLI: another build of the CLI (the checkout's own by default).
const CLI = process.env.IE_CLI ?? join(root, 'apps', 'ie', 'dist', 'cli.js');
const MODEL = process.env.MODEL ?? join(root, 'models', 'stories15m');
const CONCURRENCY = Number(process.env.CONCURRENCY ?? 64);
const MAX_TOKENS = Number(process.env.MAX_TOKENS ?? 64);
const PARALLEL = Number(process.env.PARALLEL ?? 1);
const THREADS = process.env.THREADS;
const PROMPTS = readFileSync(process.env.PROMPTS ?? join(here, 'prompts_10.txt'), 'utf8')
  .split('\n')
  .filter((l) => l.trim() && !l.startsWith('#'));

// The openai client is @ie/server's test dependency: the benchmark borrows it rather than pin a second copy.
const OpenAI = createRequire(join(root, 'packages', 'server', 'package.json'))('openai').OpenAI;

const SERVER_URL = process.env.SERVER_URL;
if (!SERVER_URL && !existsSync(join(MODEL, 'model.ie.json'))) {
  if (requireModel('serve')) refuseToMake('serve', MODEL);
  console.error(`serve: ${MODEL} does not exist; making it (ie synth --preset stories15m)`);
  const r = spawnSync(process.execPath, [CLI, 'synth', '--preset', 'stories15m', '--out-dir', MODEL, '--quiet'], { stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

const pct = (xs, p) => {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const r = (p / 100) * (s.length - 1);
  return s[Math.floor(r)] + (s[Math.ceil(r)] - s[Math.floor(r)]) * (r - Math.floor(r));
};

/** Prometheus histogram buckets as [upper bound, cumulative count]. */
function buckets(text, name) {
  const out = [];
  for (const m of text.matchAll(new RegExp(`^${name}_bucket\\{le="([^"]+)"\\} (\\S+)$`, 'gm')))
    out.push([m[1] === '+Inf' ? Number.POSITIVE_INFINITY : Number(m[1]), Number(m[2])]);
  return out;
}

/** histogram_quantile over the difference of two scrapes: the quantile within the window. */
function windowQuantile(before, after, q) {
  const d = after.map(([le, c], i) => [le, c - (before[i]?.[1] ?? 0)]);
  const total = d[d.length - 1][1];
  if (total === 0) return { value: Number.NaN, samples: 0 };
  const rank = q * total;
  let prevLe = 0;
  let prevC = 0;
  for (const [le, c] of d) {
    if (c >= rank) {
      if (le === Number.POSITIVE_INFINITY) return { value: prevLe, samples: total };
      return { value: prevLe + ((le - prevLe) * (rank - prevC)) / Math.max(1, c - prevC), samples: total };
    }
    prevLe = le;
    prevC = c;
  }
  return { value: prevLe, samples: total };
}

/** Starts `ie serve` in its own process; resolves with its URL and the line saying how the engine runs. */
async function startServer() {
  const args = ['serve', MODEL, '--port', '0', '--parallel', String(PARALLEL), '--queue', String(CONCURRENCY), '--model-name', 'bench'];
  if (THREADS) args.push('--threads', THREADS);
  const proc = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'inherit', 'pipe'] });
  let err = '';
  proc.stderr.setEncoding('utf8').on('data', (d) => (err += d));
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the server did not become ready:\n${err}`)), 120_000);
    const check = () => {
      const m = err.match(/ready at (http:\/\/[^\s]+)\/v1/);
      if (m) {
        clearTimeout(timer);
        proc.stderr.off('data', check);
        resolve(m[1]);
      }
    };
    proc.stderr.on('data', check);
    proc.once('exit', (code) => reject(new Error(`the server exited (${code}):\n${err}`)));
  });
  return { proc, url, engineLine: err.match(/^ie: (.+); context \d+; ready at/m)?.[1] ?? '' };
}

const server = SERVER_URL ? undefined : await startServer();
const url = SERVER_URL ?? server.url;
const engineLine = server?.engineLine ?? `(a running server at ${SERVER_URL})`;

const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'none', maxRetries: 0, timeout: 600_000 });
const body = (prompt) => ({ model: 'bench', prompt, max_tokens: MAX_TOKENS, temperature: 0 });

// Each prompt's text, non-streamed and alone: what every streamed answer under load must equal.
const reference = new Map();
for (const p of PROMPTS) reference.set(p, (await client.completions.create(body(p))).choices[0].text);

const scrape = async () => (await fetch(`${url}/metrics`)).text();
const before = await scrape();

const results = [];
const t0 = performance.now();
await Promise.all(
  Array.from({ length: CONCURRENCY }, async (_, i) => {
    const prompt = PROMPTS[i % PROMPTS.length];
    const start = performance.now();
    const r = { prompt, ttftMs: Number.NaN, endMs: 0, text: '', tokens: 0, error: undefined };
    try {
      const stream = await client.completions.create({ ...body(prompt), stream: true, stream_options: { include_usage: true } });
      for await (const c of stream) {
        const t = c.choices[0]?.text;
        if (t) {
          if (Number.isNaN(r.ttftMs)) r.ttftMs = performance.now() - start;
          r.text += t;
        }
        if (c.usage) r.tokens = c.usage.completion_tokens;
      }
    } catch (e) {
      r.error = e instanceof Error ? e.message : String(e);
    }
    r.endMs = performance.now() - t0;
    results.push(r);
  }),
);
const wallS = (performance.now() - t0) / 1000;
const after = await scrape();

let exit = 0;
if (server) {
  server.proc.kill('SIGTERM');
  exit = await new Promise((r) => server.proc.once('exit', (code) => r(code)));
}

const errors = results.filter((r) => r.error);
const mismatched = results.filter((r) => !r.error && r.text !== reference.get(r.prompt));
const tokens = results.reduce((a, r) => a + r.tokens, 0);
const ttft = results.filter((r) => !Number.isNaN(r.ttftMs)).map((r) => r.ttftMs);
// Behind a load balancer each scrape reaches some replica: a difference of two would mean nothing.
const lag = SERVER_URL
  ? { value: Number.NaN, samples: 0 }
  : windowQuantile(buckets(before, 'ie_event_loop_lag_seconds'), buckets(after, 'ie_event_loop_lag_seconds'), 0.99);
const cpu = (spawnSync('lscpu', { encoding: 'utf8' }).stdout?.match(/^Model name:\s*(.+)$/m)?.[1] ?? 'unknown CPU').trim();

const summary = {
  bench: 'serve',
  model: SERVER_URL ? null : MODEL,
  url,
  cpu,
  engine: engineLine,
  concurrency: CONCURRENCY,
  parallel: PARALLEL,
  max_tokens: MAX_TOKENS,
  requests: results.length,
  errors: errors.length,
  mismatched_texts: mismatched.length,
  tokens,
  wall_s: Number(wallS.toFixed(2)),
  aggregate_tok_s: Number((tokens / wallS).toFixed(1)),
  ttft_p50_ms: Number(pct(ttft, 50).toFixed(1)),
  ttft_p95_ms: Number(pct(ttft, 95).toFixed(1)),
  event_loop_lag_p99_ms: Number((lag.value * 1000).toFixed(2)),
  event_loop_lag_samples: lag.samples,
  server_exit: exit,
};
console.log(`serve: ${CONCURRENCY} concurrent streamed completions (max_tokens ${MAX_TOKENS}, greedy) on ${SERVER_URL ?? MODEL}; ${cpu}`);
console.log(`  server: ${engineLine}, --parallel ${PARALLEL}`);
console.log(`  errors ${errors.length}, lost/duplicated (text != non-streamed reference) ${mismatched.length}, tokens ${tokens}`);
console.log(`  aggregate ${summary.aggregate_tok_s} tok/s over ${summary.wall_s} s`);
console.log(
  `  TTFT p50 ${summary.ttft_p50_ms} ms, p95 ${summary.ttft_p95_ms} ms (queueing included: --parallel streams decode together, the rest wait)`,
);
if (!SERVER_URL) console.log(`  server event-loop lag p99 ${summary.event_loop_lag_p99_ms} ms (${lag.samples} samples of a 10 ms timer)`);
for (const e of errors.slice(0, 5)) console.log(`  error: ${e.error}`);
console.log(JSON.stringify(summary));
process.exitCode = errors.length || mismatched.length || exit !== 0 ? 1 : 0;
