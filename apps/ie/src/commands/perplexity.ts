import { Engine } from '@ie/runtime';
import { defineCommand } from '../command.js';
import { CliError, EXIT } from '../errors.js';
import { readFlagText } from '../text-file.js';
import { ENGINE_FLAGS, describeEngine, engineOptions } from './engine-flags.js';

export const perplexity = defineCommand({
  name: 'perplexity',
  summary:
    "measure a model's perplexity on a text file, as llama.cpp's llama-perplexity does: chunks of --context tokens (default 512), each from BOS where the vocabulary adds one, the second half of each scored",
  args: [
    {
      name: 'MODEL_DIR',
      description: 'an IEBIN model directory (ie convert or ie synth makes one), or a GGUF file (converted once into IE_CACHE_DIR)',
    },
  ],
  flags: {
    file: { type: 'string', arg: 'FILE', short: 'f', description: 'the text to score (UTF-8; wikitext-2 test is the usual one)' },
    reference: {
      type: 'string',
      arg: 'MODEL',
      description:
        "a reference model of the same vocabulary (the unquantized one): each chunk runs through both, and the KL divergence of MODEL_DIR's next-token distribution from the reference's is printed with both perplexities and how often their likeliest tokens agree (llama-perplexity's --kl-divergence in one run)",
    },
    chunks: { type: 'number', integer: true, min: 1, arg: 'N', description: 'score at most N chunks', defaultText: 'every whole chunk' },
    json: { type: 'boolean', description: 'print one JSON object (perplexity, its standard error, tokens, chunks, speed, engine)' },
    ...ENGINE_FLAGS,
    // A chunk is the context, as llama-perplexity's -c.
    context: {
      ...ENGINE_FLAGS.context,
      description: 'tokens per chunk: the positions the KV cache holds (llama-perplexity -c)',
      defaultText: "512, or the model's context when shorter",
    },
  },
  examples: [
    {
      command: 'ie perplexity models/tl -f wiki.test.raw',
      does: 'the running perplexity per chunk on stderr, the final estimate on stdout',
    },
    {
      command: 'ie perplexity models/tl-q4 -f wiki.test.raw -c 256 --chunks 20 --json',
      does: 'the first 20 chunks of 256 tokens, as JSON',
    },
  ],
  exits: ['BAD_INPUT', 'INVALID_MODEL', 'INTERRUPTED'],
  async run(v, [path], io) {
    if (v.file === undefined) throw new CliError('CLI_USAGE', `give the text as --file FILE\nusage: ${this.usage}`);
    const text = await readFlagText(`--file ${v.file}`, v.file);
    // A chunk is the context, as llama-perplexity's -c: 512 unless --context or IE_CONTEXT says otherwise.
    const contextLength = v.context ?? (process.env.IE_CONTEXT === undefined ? 512 : undefined);
    const options = { ...engineOptions(v), contextLength };
    // The environment's precision would convert the reference too, and compare a model with itself.
    for (const name of ['IE_PRECISION', 'IE_ACTIVATIONS', 'PRECISION'])
      if (v.reference !== undefined && process.env[name])
        throw new CliError(
          'CLI_USAGE',
          `--reference: ${name} is set and would apply to the reference too; unset it and give the model's --precision / --activations as flags`,
        );
    const engine = await Engine.load(path, options);
    // The reference at its own file's precision and activations; the machine's settings shared.
    const { precision: _p, activations: _a, ...shared } = options;
    let reference: Engine | undefined;
    const ac = new AbortController();
    const onSignal = () => ac.abort(new Error('interrupted'));
    process.once('SIGINT', onSignal);
    try {
      for (const n of engine.notices) io.err(`ie: note: ${n}`);
      if (v.reference !== undefined) {
        reference = await Engine.load(v.reference, { ...shared, contextLength: engine.contextLength });
        for (const n of reference.notices) io.err(`ie: note: reference: ${n}`);
      }
      const t0 = performance.now();
      const r = await engine.perplexity(text, {
        chunkSize: engine.contextLength,
        maxChunks: v.chunks,
        reference,
        signal: ac.signal,
        // llama-perplexity's running figures: [chunk]ppl, one line per chunk here.
        onChunk: (x) => {
          if (v.json) return;
          const vs = x.reference
            ? `, reference ${x.reference.perplexity.toFixed(4)}, mean KLD ${x.reference.klDivergence.mean.toFixed(6)}`
            : '';
          io.err(`[${x.chunks}/${x.totalChunks}] ${x.perplexity.toFixed(4)}${vs}`);
        },
      });
      const seconds = (performance.now() - t0) / 1000;
      const chunkSize = engine.contextLength;
      // Tokens run per second (both models' when a reference runs too).
      const tokensPerSec = ((reference ? 2 : 1) * r.chunks * chunkSize) / seconds;
      const info = engine.info();
      if (v.json)
        io.out(
          JSON.stringify({
            model: path,
            ...(v.reference !== undefined ? { referenceModel: v.reference } : {}),
            file: v.file,
            ...r,
            chunkSize,
            seconds,
            tokensPerSec,
            precision: info.precision,
            activations: info.activations,
            threads: info.threads,
            isa: info.isa,
          }),
        );
      else {
        io.out(`PPL = ${r.perplexity.toFixed(4)} +/- ${r.stderr.toFixed(5)}`);
        const ref = r.reference;
        if (ref) {
          const k = ref.klDivergence;
          io.out(`reference PPL = ${ref.perplexity.toFixed(4)} +/- ${ref.stderr.toFixed(5)}`);
          io.out(`mean KLD = ${k.mean.toFixed(6)} +/- ${k.stderr.toFixed(6)} (max ${k.max.toFixed(6)}, 99% ${k.p99.toFixed(6)})`);
          io.out(`same top = ${(100 * ref.sameTop).toFixed(2)}%`);
        }
        io.err(
          `ie: ${r.tokens} tokens scored in ${r.chunks} chunks of ${chunkSize} (${tokensPerSec.toFixed(1)} tok/s run); ${describeEngine(info)}`,
        );
      }
      return EXIT.OK;
    } finally {
      process.off('SIGINT', onSignal);
      try {
        await reference?.dispose();
      } finally {
        await engine.dispose();
      }
    }
  },
});
