import {
  BLOCK_FORMATS,
  FLOAT_DTYPES,
  GGUF_WRITE_TYPES,
  SYNTH_PRESETS,
  exportIebin,
  isBlockDtype,
  synthModel,
  synthTensorValues,
  writeGguf,
  writeHfDir,
  type BlockDtype,
  type ModelSource,
} from '@ie/format';
import { packBlocks, packInt4Groupwise, packInt8 } from '@ie/quant';
import { choice, intFlag, required, withAbortOnSignal, type Command } from '../command.js';
import { CliError, EXIT } from '../errors.js';
import { bytes, peakRss } from '../human.js';
import { Progress } from '../progress.js';
import { CONVERTER } from '../version.js';

/** gpt-oss models are bf16 (as OpenAI's checkpoint; the default) or f32, experts MXFP4 in every format. */
const GPT_OSS_DTYPES = ['bf16', 'f32'] as const;
/** An HF directory without --shards is cut as transformers' save_pretrained cuts: files of at most 5 GB. */
const HF_MAX_SHARD_BYTES = 5e9;

export const synth: Command = {
  name: 'synth',
  summary: 'make a seeded random llama or gpt-oss model of a realistic shape (HF directory, IEBIN or a GGUF file)',
  usage: `ie synth --preset ${Object.keys(SYNTH_PRESETS).join('|')} (--out-dir DIR [--format hf|iebin] [--dtype f32|f16|bf16] [--shards N] | --format gguf --out FILE.gguf [--dtype f32|f16|bf16|q8_0|q4_0|q4_k_m|q5_k_m|q6_k|iq4_nl]) [--layers N] [--seed N] [--quiet]
  gpt-oss presets: --dtype bf16 (default) or f32 in every format, experts MXFP4
  --layers N keeps the first N layers (a cut-down model for benchmarks)`,
  positionals: [0, 0],
  options: {
    preset: { type: 'string' },
    'out-dir': { type: 'string' },
    out: { type: 'string' },
    format: { type: 'string' },
    seed: { type: 'string' },
    dtype: { type: 'string' },
    shards: { type: 'string' },
    layers: { type: 'string' },
    quiet: { type: 'boolean' },
  },
  async run(v, _p, io) {
    const presetName = required(v, 'preset', this);
    const preset = SYNTH_PRESETS[presetName];
    if (!preset)
      throw new CliError(
        'CLI_USAGE',
        `unknown preset ${JSON.stringify(presetName)}; presets: ${Object.entries(SYNTH_PRESETS)
          .map(([k, p]) => `${k} (${p.description})`)
          .join('; ')}`,
      );
    const format = choice(v, 'format', ['hf', 'iebin', 'gguf'] as const, 'iebin');
    const seed = intFlag(v, 'seed', 0, 2 ** 32 - 1, 1) as number;
    const layers = intFlag(v, 'layers', 1, preset.config.n_layers);
    const gptOss = preset.config.architecture === 'gpt-oss';
    const what = `${presetName} (${preset.description})${layers !== undefined && layers !== preset.config.n_layers ? `, cut to ${layers} of ${preset.config.n_layers} layers` : ''}, seed ${seed}`;
    const t0 = performance.now();
    const took = () => `in ${((performance.now() - t0) / 1000).toFixed(1)} s, peak RSS ${bytes(peakRss())}`;
    if (format === 'gguf') {
      if (v['out-dir'] !== undefined)
        throw new CliError('CLI_USAGE', '--format gguf writes one file: give --out FILE.gguf instead of --out-dir');
      const out = required(v, 'out', this);
      if (gptOss) {
        const dtype = choice(v, 'dtype', GPT_OSS_DTYPES, 'bf16') as (typeof GPT_OSS_DTYPES)[number];
        const size = await writeGguf(synthModel(presetName, { seed, dtype, layers }), out, { name: `ie-synth-${presetName}-${dtype}` });
        io.out(
          `wrote ${out}: GGUF, ${what}, experts mxfp4, ${dtype} matrices (norms, biases, sinks and router f32), ${bytes(size)} ${took()}`,
        );
        return EXIT.OK;
      }
      const type = choice(v, 'dtype', GGUF_WRITE_TYPES, 'f32') as (typeof GGUF_WRITE_TYPES)[number];
      const { source, fallbacks } = ggufSource(presetName, seed, type, layers);
      const size = await writeGguf(source, out, { name: `ie-synth-${presetName}-${type}` });
      const fell = fallbacks ? ` (${fallbacks} matrices in q8_0: their rows are not whole blocks of ${type})` : '';
      io.out(`wrote ${out}: GGUF, ${what}, ${type}${fell}, ${bytes(size)} ${took()}`);
      return EXIT.OK;
    }
    if (v.out !== undefined) throw new CliError('CLI_USAGE', '--out is for --format gguf; HF and IEBIN models go to --out-dir DIR');
    const outDir = required(v, 'out-dir', this);
    const dtype = gptOss ? choice(v, 'dtype', GPT_OSS_DTYPES, 'bf16') : choice(v, 'dtype', FLOAT_DTYPES, 'f32');
    const shards = intFlag(v, 'shards', 1, 1000);
    if (shards !== undefined && shards > 1 && format !== 'hf') throw new CliError('CLI_USAGE', '--shards applies to --format hf only');
    const source = synthModel(presetName, { seed, dtype, layers });
    const experts = gptOss ? ', experts mxfp4' : '';
    if (format === 'hf') {
      const files = await writeHfDir(source, outDir, shards === undefined ? { maxShardBytes: HF_MAX_SHARD_BYTES } : { shards });
      io.out(`wrote ${outDir}: Hugging Face directory, ${what}, ${dtype}${experts}, ${files} shard(s) ${took()}`);
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
    io.out(`wrote ${outDir}: IEBIN, ${what}, ${dtype}${experts}, ${bytes(header.bin.bytes)} ${took()}`);
    return EXIT.OK;
  },
};

/**
 * The synthetic llama model with its 2-D tensors in a GGUF type: float types as generated; q8_0 and q4_0
 * quantized from the f32 values by @ie/quant's packers, which reproduce llama.cpp's reference
 * Q8_0 / Q4_0 quantizers byte for byte; the K-quant recipes and iq4_nl by @ie/quant's block
 * packers. A matrix whose rows are not whole blocks of its type (a 288-wide model and 256-element
 * K-quant blocks) falls back to q8_0, as llama.cpp falls back to a type that fits.
 */
function ggufSource(
  preset: string,
  seed: number,
  type: (typeof GGUF_WRITE_TYPES)[number],
  layers: number | undefined,
): { source: ModelSource; fallbacks: number } {
  const float = type === 'f16' || type === 'bf16' ? type : 'f32';
  const source = synthModel(preset, { seed, dtype: float, layers });
  if (type === 'f32' || type === 'f16' || type === 'bf16') return { source, fallbacks: 0 };
  const config = source.config;
  const g32 = { scheme: 'symmetric' as const, granularity: 'per_group' as const, group_size: 32, scale_dtype: 'f16' as const };
  let fallbacks = 0;
  const tensors = source.tensors.map((t, i) => {
    if (t.shape.length !== 2) return t;
    const [rows, cols] = t.shape;
    const values = () => synthTensorValues(config, seed, i);
    let kind = matrixType(type, t.name);
    if (isBlockDtype(kind) && cols % BLOCK_FORMATS[kind].elems !== 0) {
      kind = 'q8_0';
      fallbacks++;
    }
    if (kind === 'q4_0')
      return {
        ...t,
        dtype: 'q4' as const,
        quant: g32,
        read: async () => packInt4Groupwise(values(), rows, cols, { scheme: 'symmetric', groupSize: 32, scaleDtype: 'f16' }).bytes,
      };
    if (kind === 'q8_0')
      return {
        ...t,
        dtype: 'i8' as const,
        quant: g32,
        read: async () => packInt8(values(), rows, cols, { granularity: 'per_group', groupSize: 32, scaleDtype: 'f16' }).bytes,
      };
    const block = kind;
    return { ...t, dtype: block, quant: null, read: async () => packBlocks(block, values(), rows, cols) };
  });
  return { source: { ...source, tensors }, fallbacks };
}

/** The type one matrix gets in a GGUF file type (llama.cpp's Q4_K_M / Q5_K_M recipes keep attn_v, ffn_down and the classifier in q6_k). */
function matrixType(type: 'q8_0' | 'q4_0' | 'q4_k_m' | 'q5_k_m' | 'q6_k' | 'iq4_nl', name: string): 'q8_0' | 'q4_0' | BlockDtype {
  if (type !== 'q4_k_m' && type !== 'q5_k_m') return type;
  return /\.(attn_v|ffn_down)\.weight$|^output\.weight$/.test(name) ? 'q6_k' : type === 'q4_k_m' ? 'q4_k' : 'q5_k';
}
