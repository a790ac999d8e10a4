#!/usr/bin/env node
// What the prompt features cost and save, on one model, alternated in one run:
//   - scoring (promptLogprobs: every position's logits, as `echo` + `logprobs` and `ie perplexity`
//     need) against a plain prefill of the same prompt;
//   - N requests with one prompt under continuous batching (n choices), the prompt prefilled by
//     each against copied from the first one's KV slot (reusePrefix).
// Prints tok/s and seconds; writes the JSON to reports/.
//
//   pnpm bench:prompts
//   MODEL=benchmarks/.cache/tinyllama-1.1b-q4_0.iebin PROMPT_TOKENS=400 CHOICES=4 ROUNDS=2 pnpm bench:prompts
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BatchScheduler, Model } from '@ie/runtime';
import { cpuInfo, writeReport } from './lib.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const MODEL = process.env.MODEL ?? join(here, '.cache', 'tinyllama-1.1b-q4_0.iebin');
const THREADS = Number(process.env.THREADS ?? 2);
const PROMPT_TOKENS = Number(process.env.PROMPT_TOKENS ?? 400);
const CHOICES = Number(process.env.CHOICES ?? 4);
const ROUNDS = Number(process.env.ROUNDS ?? 2);
const NEW_TOKENS = Number(process.env.NEW_TOKENS ?? 16);
if (!existsSync(MODEL)) {
  process.stderr.write(`bench:prompts: ${MODEL} is missing (pnpm bench:peer makes the TinyLlama files; or give MODEL=)\n`);
  process.exit(2);
}

const model = await Model.open(MODEL, { sequences: CHOICES, threads: THREADS, contextLength: PROMPT_TOKENS + NEW_TOKENS + 8 });
const vocab = model.config.vocab_size;
// A prompt whose second token differs per run, so that no slot's own cache helps the next.
let run = 0;
const fresh = () => {
  run++;
  return [
    1,
    3 + ((run * 104729) % (vocab - 3)),
    ...Array.from({ length: PROMPT_TOKENS - 2 }, (_, i) => 3 + ((i * 7919 + 17) % (vocab - 3))),
  ];
};
const sched = new BatchScheduler(model);
const timed = async (f) => {
  const t = performance.now();
  const r = await f();
  return { seconds: (performance.now() - t) / 1000, r };
};
const results = { scoring: [], sharing: [] };
for (let round = 0; round < ROUNDS; round++) {
  for (const promptLogprobs of [false, true]) {
    const { seconds } = await timed(() => sched.generate(fresh(), { maxTokens: 0, promptLogprobs }).complete());
    results.scoring.push({ promptLogprobs, seconds, tokS: PROMPT_TOKENS / seconds });
  }
  for (const reusePrefix of [false, true]) {
    const ids = fresh();
    const { seconds, r } = await timed(() =>
      Promise.all(
        Array.from({ length: CHOICES }, () =>
          sched.generate(ids, { maxTokens: NEW_TOKENS, temperature: 0, ignoreEos: true, reusePrefix }).complete(),
        ),
      ),
    );
    const same = r.every((x) => JSON.stringify(x.tokens) === JSON.stringify(r[0].tokens));
    results.sharing.push({ reusePrefix, seconds, cachedTokens: r.map((x) => x.metrics.cachedTokens), sameTokens: same });
  }
}
await sched.close();
await model.dispose();

const info = cpuInfo();
const report = {
  model: MODEL,
  threads: THREADS,
  promptTokens: PROMPT_TOKENS,
  choices: CHOICES,
  newTokens: NEW_TOKENS,
  cpu: info.cpu,
  isa: info.isa,
  ...results,
};
console.log(JSON.stringify(report));
const tok = (xs) => xs.map((x) => x.tokS.toFixed(1)).join(' / ');
const secs = (xs) => xs.map((x) => x.seconds.toFixed(2)).join(' / ');
console.log(
  `\n${MODEL.split('/').pop()}, ${THREADS} threads, CPU ${info.cpu} (${info.isa}), ${ROUNDS} rounds alternated` +
    `\n${PROMPT_TOKENS}-token prompt: prefilled ${tok(results.scoring.filter((x) => !x.promptLogprobs))} tok/s, scored ${tok(results.scoring.filter((x) => x.promptLogprobs))} tok/s` +
    `\n${CHOICES} requests with one ${PROMPT_TOKENS}-token prompt, ${NEW_TOKENS} tokens each: each prefilled ${secs(results.sharing.filter((x) => !x.reusePrefix))} s, ` +
    `copied from the first ${secs(results.sharing.filter((x) => x.reusePrefix))} s (same tokens: ${results.sharing.every((x) => x.sameTokens)})`,
);
writeReport('prompts', MODEL, report);
