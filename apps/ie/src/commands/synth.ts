import { FLOAT_DTYPES, GGUF_WRITE_TYPES, SYNTH_PRESETS, exportIebin, synthModel, synthTensorValues, writeGguf, writeHfDir, type ModelSource } from '@ie/format';
import { packInt4Groupwise, packInt8 } from '@ie/quant';
import { choice, intFlag, required, withAbortOnSignal, type Command } from '../command.js';
import { CliError, EXIT } from '../errors.js';
import { bytes, peakRss } from '../human.js';
import { Progress } from '../progress.js';
import { CONVERTER } from '../version.js';

export const synth: Command = {
  name: 'synth',
  summary: 'make a seeded random llama model of a realistic shape (HF directory, IEBIN or a GGUF file)',
  usage: `ie synth --preset ${Object.keys(SYNTH_PRESETS).join('|')} (--out-dir DIR [--format hf|iebin] [--dtype f32|f16|bf16] [--shards N] | --format gguf --out FILE.gguf [--dtype f32|f16|bf16|q8_0|q4_0]) [--seed N] [--quiet]`,
  positionals: [0, 0],
  options: {
    preset: { type: 'string' },
    'out-dir': { type: 'string' },
    out: { type: 'string' },
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
    const format = choice(v, 'format', ['hf', 'iebin', 'gguf'] as const, 'iebin');
    const seed = intFlag(v, 'seed', 0, 2 ** 32 - 1, 1) as number;
    if (format === 'gguf') {
      if (v['out-dir'] !== undefined) throw new CliError('CLI_USAGE', '--format gguf writes one file: give --out FILE.gguf instead of --out-dir');
      const out = required(v, 'out', this);
      const type = choice(v, 'dtype', GGUF_WRITE_TYPES, 'f32') as (typeof GGUF_WRITE_TYPES)[number];
      const t0 = performance.now();
      const size = await writeGguf(ggufSource(presetName, seed, type), out, { name: `ie-synth-${presetName}-${type}` });
      io.out(`wrote ${out}: GGUF, ${presetName} (${preset.description}), seed ${seed}, ${type}, ${bytes(size)} in ${((performance.now() - t0) / 1000).toFixed(1)} s, peak RSS ${bytes(peakRss())}`);
      return EXIT.OK;
    }
    if (v.out !== undefined) throw new CliError('CLI_USAGE', '--out is for --format gguf; HF and IEBIN models go to --out-dir DIR');
    const outDir = required(v, 'out-dir', this);
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

/**
 * The synthetic model with its 2-D tensors in a GGUF type: float types as generated; q8_0 and q4_0
 * quantized from the f32 values by @ie/quant's packers, which reproduce llama.cpp's reference
 * Q8_0 / Q4_0 quantizers byte for byte.
 */
function ggufSource(preset: string, seed: number, type: (typeof GGUF_WRITE_TYPES)[number]): ModelSource {
  const float = type === 'f16' || type === 'bf16' ? type : 'f32';
  const source = synthModel(preset, { seed, dtype: float });
  if (type !== 'q8_0' && type !== 'q4_0') return source;
  const config = source.config;
  return {
    ...source,
    tensors: source.tensors.map((t, i) => {
      if (t.shape.length !== 2) return t;
      const [rows, cols] = t.shape;
      const pack = () => {
        const values = synthTensorValues(config, seed, i);
        return type === 'q4_0'
          ? packInt4Groupwise(values, rows, cols, { scheme: 'symmetric', groupSize: 32, scaleDtype: 'f16' })
          : packInt8(values, rows, cols, { granularity: 'per_group', groupSize: 32, scaleDtype: 'f16' });
      };
      const quant = { scheme: 'symmetric' as const, granularity: 'per_group' as const, group_size: 32, scale_dtype: 'f16' as const };
      return { ...t, dtype: type === 'q4_0' ? ('q4' as const) : ('i8' as const), quant, read: async () => pack().bytes };
    }),
  };
}
