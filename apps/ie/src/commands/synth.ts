import { FLOAT_DTYPES, SYNTH_PRESETS, exportIebin, synthModel, writeHfDir } from '@ie/format';
import { choice, intFlag, required, withAbortOnSignal, type Command } from '../command.js';
import { CliError, EXIT } from '../errors.js';
import { bytes, peakRss } from '../human.js';
import { Progress } from '../progress.js';
import { CONVERTER } from '../version.js';

export const synth: Command = {
  name: 'synth',
  summary: 'make a seeded random llama model of a realistic shape (HF directory or IEBIN)',
  usage: `ie synth --preset ${Object.keys(SYNTH_PRESETS).join('|')} --out-dir DIR [--format hf|iebin] [--seed N] [--dtype f32|f16|bf16] [--shards N] [--quiet]`,
  positionals: [0, 0],
  options: {
    preset: { type: 'string' },
    'out-dir': { type: 'string' },
    format: { type: 'string' },
    seed: { type: 'string' },
    dtype: { type: 'string' },
    shards: { type: 'string' },
    quiet: { type: 'boolean' },
  },
  async run(v, _p, io) {
    const presetName = required(v, 'preset', this);
    const preset = SYNTH_PRESETS[presetName];
    if (!preset) throw new CliError('CLI_USAGE', `unknown preset ${JSON.stringify(presetName)}; presets: ${Object.entries(SYNTH_PRESETS).map(([k, p]) => `${k} (${p.description})`).join('; ')}`);
    const outDir = required(v, 'out-dir', this);
    const format = choice(v, 'format', ['hf', 'iebin'] as const, 'iebin');
    const seed = intFlag(v, 'seed', 0, 2 ** 32 - 1, 1) as number;
    const dtype = choice(v, 'dtype', FLOAT_DTYPES, 'f32');
    const shards = intFlag(v, 'shards', 1, 1000, 1) as number;
    if (shards > 1 && format !== 'hf') throw new CliError('CLI_USAGE', '--shards applies to --format hf only');
    const source = synthModel(presetName, { seed, dtype });
    const t0 = performance.now();
    if (format === 'hf') {
      await writeHfDir(source, outDir, { shards });
      io.out(`wrote ${outDir}: Hugging Face directory, ${presetName} (${preset.description}), seed ${seed}, ${dtype}, ${shards} shard(s) in ${((performance.now() - t0) / 1000).toFixed(1)} s, peak RSS ${bytes(peakRss())}`);
      return EXIT.OK;
    }
    const progress = new Progress('synthesizing', process.stderr, !v.quiet);
    const header = await withAbortOnSignal((register) =>
      exportIebin(source, outDir, {
        converter: CONVERTER,
        onWriter: (w) => register(() => w.abortSync()),
        onProgress: (p) => progress.update(p.bytesDone, p.bytesTotal, `${p.index + 1}/${p.count} ${p.tensor}`),
      }),
    );
    progress.done();
    io.out(`wrote ${outDir}: IEBIN, ${presetName} (${preset.description}), seed ${seed}, ${dtype}, ${bytes(header.bin.bytes)} in ${((performance.now() - t0) / 1000).toFixed(1)} s, peak RSS ${bytes(peakRss())}`);
    return EXIT.OK;
  },
};
