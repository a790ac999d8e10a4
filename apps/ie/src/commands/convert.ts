import { FLOAT_DTYPES, exportIebin, openGguf, openHfDir, openLlama2c, type ModelSource } from '@ie/format';
import { choice, intFlag, withAbortOnSignal, type Command } from '../command.js';
import { CliError, EXIT } from '../errors.js';
import { bytes, int, peakRss } from '../human.js';
import { Progress } from '../progress.js';
import { CONVERTER } from '../version.js';

export const convert: Command = {
  name: 'convert',
  summary: 'convert a Hugging Face directory, llama2.c checkpoint or GGUF file to IEBIN',
  usage: 'ie convert (--hf-dir DIR | --llama2c FILE --tokenizer FILE | --gguf FILE) --out-dir DIR [--dtype f32|f16|bf16] [--pretranspose] [--block-k N] [--quiet]',
  positionals: [0, 0],
  options: {
    'hf-dir': { type: 'string' },
    llama2c: { type: 'string' },
    tokenizer: { type: 'string' },
    gguf: { type: 'string' },
    'out-dir': { type: 'string' },
    dtype: { type: 'string' },
    pretranspose: { type: 'boolean' },
    'block-k': { type: 'string' },
    'q4-map': { type: 'string' },
    quiet: { type: 'boolean' },
  },
  async run(v, _p, io) {
    if (v['q4-map'] !== undefined) {
      throw new CliError('CLI_NOT_AVAILABLE', '--q4-map (quantization manifests) is not available yet: manifest-driven int4/int8 export lands with @ie/quant\'s manifest support. Convert without it to get an f32/f16/bf16 model.');
    }
    const sources = ['hf-dir', 'llama2c', 'gguf'].filter((k) => v[k] !== undefined);
    if (sources.length !== 1) throw new CliError('CLI_USAGE', `give exactly one source: --hf-dir, --llama2c (with --tokenizer) or --gguf\nusage: ${this.usage}`);
    if (v.llama2c !== undefined && v.tokenizer === undefined) throw new CliError('CLI_USAGE', '--llama2c needs --tokenizer FILE (the tokenizer.bin that goes with the checkpoint)');
    if (v.llama2c === undefined && v.tokenizer !== undefined) throw new CliError('CLI_USAGE', '--tokenizer goes with --llama2c only (HF and GGUF models carry their tokenizer)');
    const outDir = v['out-dir'];
    if (typeof outDir !== 'string' || outDir === '') throw new CliError('CLI_USAGE', `--out-dir is required\nusage: ${this.usage}`);
    const dtype = choice(v, 'dtype', FLOAT_DTYPES);
    const blockK = intFlag(v, 'block-k', 64, 1 << 20);
    if (blockK !== undefined && blockK % 64 !== 0) throw new CliError('CLI_USAGE', `--block-k must be a multiple of 64, got ${blockK}`);
    if (blockK !== undefined && v.pretranspose) throw new CliError('CLI_USAGE', '--pretranspose and --block-k cannot be combined');

    let source: ModelSource;
    if (v['hf-dir'] !== undefined) source = await openHfDir(v['hf-dir'] as string);
    else if (v.gguf !== undefined) source = await openGguf(v.gguf as string);
    else source = await openLlama2c(v.llama2c as string, v.tokenizer as string);
    const progress = new Progress('converting', process.stderr, !v.quiet);
    try {
      const t0 = performance.now();
      const header = await withAbortOnSignal((register) =>
        exportIebin(source, outDir, {
          converter: CONVERTER,
          dtype,
          pretranspose: v.pretranspose === true,
          blockK,
          onWriter: (w) => register(() => w.abortSync()),
          onProgress: (p) => progress.update(p.bytesDone, p.bytesTotal, `${p.index + 1}/${p.count} ${p.tensor}`),
        }),
      );
      progress.done();
      const secs = (performance.now() - t0) / 1000;
      io.out(`wrote ${outDir}: ${header.tensors.length} tensors, ${bytes(header.bin.bytes)} (${int(header.bin.bytes)} bytes) in ${secs.toFixed(1)} s, peak RSS ${bytes(peakRss())}`);
      for (const n of header.provenance.notes ?? []) io.out(`  note: ${n}`);
      return EXIT.OK;
    } finally {
      await source.close();
    }
  },
};
