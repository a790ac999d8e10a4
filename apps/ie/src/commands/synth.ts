import { dirname, resolve } from 'node:path';
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
  readChunks,
  readStreams,
  type BlockDtype,
  type ModelSource,
  type SourceTensor,
} from '@ie/format';
import { packBlocks, packInt4Groupwise, packInt8 } from '@ie/quant';
import { choice, defineCommand, inRange, withAbortOnSignal, withCleanupOnSignal } from '../command.js';
import { CliError, EXIT } from '../errors.js';
import { bytes, peakRss } from '../human.js';
import { Progress } from '../progress.js';
import { CONVERTER } from '../version.js';

/** gpt-oss models are bf16 (as OpenAI's checkpoint; the default) or f32, experts MXFP4 in every format. */
const GPT_OSS_DTYPES = ['bf16', 'f32'] as const;
/** An HF directory without --shards is cut as transformers' save_pretrained cuts: files of at most 5 GB. */
const HF_MAX_SHARD_BYTES = 5e9;

/** Every --dtype some format takes; which ones apply is checked per format and preset. */
const SYNTH_DTYPES = [...new Set([...FLOAT_DTYPES, ...GGUF_WRITE_TYPES])];

export const synth = defineCommand({
  name: 'synth',
  summary: 'make a seeded random llama or gpt-oss model of a realistic shape (HF directory, IEBIN or a GGUF file)',
  args: [],
  flags: {
    preset: {
      type: 'string',
      arg: 'NAME',
      required: true,
      description: `the model's shape: ${Object.keys(SYNTH_PRESETS).join(', ')}`,
    },
    'out-dir': { type: 'string', arg: 'DIR', oneOf: 'output', description: 'the directory to write (--format hf or iebin)' },
    out: { type: 'string', arg: 'FILE', oneOf: 'output', description: 'the file to write (--format gguf)' },
    format: {
      type: 'choice',
      arg: 'FORMAT',
      choices: ['hf', 'iebin', 'gguf'],
      default: 'iebin',
      description: 'a Hugging Face directory, IEBIN (what ie runs) or a GGUF file llama.cpp loads too',
    },
    dtype: {
      type: 'choice',
      arg: 'TYPE',
      choices: SYNTH_DTYPES,
      description:
        "the matrices' type: f32, f16 or bf16 in every format; the quantized ones in GGUF only; gpt-oss presets bf16 or f32, experts MXFP4",
      defaultText: 'f32; bf16 for gpt-oss',
    },
    shards: {
      type: 'number',
      integer: true,
      min: 1,
      max: 1000,
      arg: 'N',
      description: 'cut the safetensors into N files (--format hf)',
      defaultText: 'files of at most 5 GB, as transformers',
    },
    // Bounded by the preset's layer count, checked in run.
    layers: {
      type: 'number',
      integer: true,
      arg: 'N',
      description: 'keep the first N layers (a cut-down model for benchmarks)',
      defaultText: "the preset's",
    },
    seed: {
      type: 'number',
      integer: true,
      min: 0,
      max: 2 ** 32 - 1,
      default: 1,
      arg: 'N',
      description: 'the random seed: the same seed writes the same bytes',
    },
    quiet: { type: 'boolean', description: 'no progress on stderr' },
  },
  examples: [
    { command: 'ie synth --preset tiny --out-dir models/tiny', does: 'a tiny llama as IEBIN, ready for ie generate' },
    {
      command: 'ie synth --preset tinyllama-1.1b --format hf --shards 3 --out-dir models/tl-hf',
      does: 'TinyLlama-1.1B-shaped, as a Hugging Face directory in three shards (for ie convert --hf-dir)',
    },
    {
      command: 'ie synth --preset stories15m --format gguf --dtype q4_0 --out models/s15m-q4_0.gguf',
      does: 'a GGUF file quantized as llama.cpp quantizes Q4_0',
    },
  ],
  exits: ['INTERRUPTED', 'TERMINATED'],
  async run(v, _p, io) {
    const presetName = v.preset;
    const preset = Object.hasOwn(SYNTH_PRESETS, presetName) ? SYNTH_PRESETS[presetName] : undefined;
    if (!preset)
      throw new CliError(
        'CLI_USAGE',
        `unknown preset ${JSON.stringify(presetName)}; presets: ${Object.entries(SYNTH_PRESETS)
          .map(([k, p]) => `${k} (${p.description})`)
          .join('; ')}`,
      );
    const { format, seed } = v;
    const layers = inRange('layers', v.layers, 1, preset.config.n_layers);
    const gptOss = preset.config.architecture === 'gpt-oss';
    const what = `${presetName} (${preset.description})${layers !== undefined && layers !== preset.config.n_layers ? `, cut to ${layers} of ${preset.config.n_layers} layers` : ''}, seed ${seed}`;
    const t0 = performance.now();
    const took = () => `in ${((performance.now() - t0) / 1000).toFixed(1)} s, peak RSS ${bytes(peakRss())}`;
    const progress = new Progress('synthesizing', process.stderr, !v.quiet);
    const tracked = (source: ModelSource) => counted(source, (done, total, tensor) => progress.update(done, total, tensor));
    if (format === 'gguf') {
      if (v['out-dir'] !== undefined)
        throw new CliError('CLI_USAGE', '--format gguf writes one file: give --out FILE.gguf instead of --out-dir');
      const out = v.out as string;
      const type = gptOss
        ? (choice('dtype', v.dtype, GPT_OSS_DTYPES, 'bf16') as (typeof GPT_OSS_DTYPES)[number])
        : (choice('dtype', v.dtype, GGUF_WRITE_TYPES, 'f32') as (typeof GGUF_WRITE_TYPES)[number]);
      const { source, fallbacks } = gptOss
        ? { source: synthModel(presetName, { seed, dtype: type as 'bf16' | 'f32', layers }), fallbacks: 0 }
        : ggufSource(presetName, seed, type, layers);
      const size = await withCleanupOnSignal(dirname(resolve(out)), () =>
        writeGguf(tracked(source), out, { name: `ie-synth-${presetName}-${type}` }),
      );
      progress.done(bytes(size));
      const fell = fallbacks ? ` (${fallbacks} matrices in q8_0: their rows are not whole blocks of ${type})` : '';
      const kinds = gptOss ? `experts mxfp4, ${type} matrices (norms, biases, sinks and router f32)` : `${type}${fell}`;
      io.out(`wrote ${out}: GGUF, ${what}, ${kinds}, ${bytes(size)} ${took()}`);
      return EXIT.OK;
    }
    if (v.out !== undefined) throw new CliError('CLI_USAGE', '--out is for --format gguf; HF and IEBIN models go to --out-dir DIR');
    const outDir = v['out-dir'] as string;
    const dtype = gptOss ? choice('dtype', v.dtype, GPT_OSS_DTYPES, 'bf16') : choice('dtype', v.dtype, FLOAT_DTYPES, 'f32');
    const shards = v.shards;
    if (shards !== undefined && shards > 1 && format !== 'hf') throw new CliError('CLI_USAGE', '--shards applies to --format hf only');
    const source = synthModel(presetName, { seed, dtype, layers });
    const experts = gptOss ? ', experts mxfp4' : '';
    if (format === 'hf') {
      const files = await withCleanupOnSignal(outDir, () =>
        writeHfDir(tracked(source), outDir, shards === undefined ? { maxShardBytes: HF_MAX_SHARD_BYTES } : { shards }),
      );
      progress.done(`${files} shard(s)`);
      io.out(`wrote ${outDir}: Hugging Face directory, ${what}, ${dtype}${experts}, ${files} shard(s) ${took()}`);
      return EXIT.OK;
    }
    const header = await withAbortOnSignal((register) =>
      exportIebin(source, outDir, {
        converter: CONVERTER,
        onWriter: (w) => register(() => w.abortSync()),
        onProgress: (p) => progress.update(p.bytesDone, p.bytesTotal, `${p.index + 1}/${p.count} ${p.tensor}`),
      }),
    );
    progress.done(bytes(header.bin.bytes));
    io.out(`wrote ${outDir}: IEBIN, ${what}, ${dtype}${experts}, ${bytes(header.bin.bytes)} ${took()}`);
    return EXIT.OK;
  },
});

/** The bytes a source tensor reads (as @ie/format's exporter counts them): for progress only. */
function sourceBytes(t: SourceTensor): number {
  const n = t.shape.reduce((a, b) => a * b, 1);
  if (isBlockDtype(t.dtype)) return (n / BLOCK_FORMATS[t.dtype].elems) * BLOCK_FORMATS[t.dtype].bytes;
  // q4 and i8 in groups of 32 with f16 scales: 18 and 34 bytes per 32 weights.
  return n * (t.dtype === 'f32' ? 4 : t.dtype === 'q4' ? 18 / 32 : t.dtype === 'i8' ? 34 / 32 : 2);
}

/**
 * The source with every tensor read counted, so writers that take no progress callback (HF,
 * GGUF) still report progress. Streaming reads stay streaming; a tensor read twice counts once.
 */
function counted(source: ModelSource, onBytes: (done: number, total: number, tensor: string) => void): ModelSource {
  const sizes = source.tensors.map(sourceBytes);
  const total = sizes.reduce((a, b) => a + b, 0);
  let done = 0;
  const tensors = source.tensors.map((t, i) => {
    let got = 0;
    const add = (n: number) => {
      const d = Math.min(n, sizes[i] - got);
      got += d;
      done += d;
      onBytes(done, total, t.name);
    };
    const read = async () => {
      const b = await t.read();
      add(b.length);
      return b;
    };
    if (!readStreams(t)) return { ...t, read };
    async function* chunks(): AsyncIterable<Uint8Array> {
      for await (const c of readChunks(t)) {
        add(c.length);
        yield c;
      }
    }
    return { ...t, read: Object.assign(read, { chunks }) };
  });
  return { ...source, tensors };
}

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
    // Every quantized GGUF type, the q8_0 fallback included, stores rows in 32-element blocks.
    if (cols % 32 !== 0)
      throw new CliError(
        'CLI_USAGE',
        `--dtype ${type}: the ${preset} preset's ${t.name} has rows of ${cols} elements, not whole 32-element blocks; give --dtype f32, f16 or bf16, or a preset whose dimensions are multiples of 32 (stories15m, tinyllama-1.1b)`,
      );
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
