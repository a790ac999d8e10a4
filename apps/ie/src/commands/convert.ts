import { FLOAT_DTYPES, exportIebin, openGguf, openHfDir, openLlama2c, type ModelSource } from '@ie/format';
import { ClipSearchPool, planExport, readManifest, type ExportPlan } from '@ie/quant';
import { choice, intFlag, withAbortOnSignal, type Command } from '../command.js';
import { CliError, EXIT } from '../errors.js';
import { bytes, int, peakRss } from '../human.js';
import { Progress } from '../progress.js';
import { CONVERTER } from '../version.js';

export const convert: Command = {
  name: 'convert',
  summary: 'convert a Hugging Face directory, llama2.c checkpoint or GGUF file to IEBIN',
  usage: 'ie convert (--hf-dir DIR | --llama2c FILE --tokenizer FILE | --gguf FILE) --out-dir DIR [--dtype f32|f16|bf16] [--pretranspose] [--block-k N] [--q4-map MANIFEST.json [--force] [--threads N]] [--quiet]',
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
    force: { type: 'boolean' },
    threads: { type: 'string' },
    quiet: { type: 'boolean' },
  },
  async run(v, _p, io) {
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
    const manifestFile = v['q4-map'] as string | undefined;
    if (manifestFile !== undefined) {
      const clash = (['dtype', 'pretranspose', 'block-k'] as const).filter((f) => v[f] !== undefined);
      if (clash.length) throw new CliError('CLI_USAGE', `--q4-map decides every tensor's encoding and layout; drop ${clash.map((f) => `--${f}`).join(', ')} and put it in the manifest (a rule such as {"match": "token_embd.weight", "scheme": "f16"}, or "layout": {"block_k": 256})`);
    } else if (v.force || v.threads !== undefined) throw new CliError('CLI_USAGE', `${v.force ? '--force' : '--threads'} goes with --q4-map (${v.force ? 'it exports a manifest that failed its gate' : 'it sets the threads of the clip search'})`);
    const threads = intFlag(v, 'threads', 1, 1024);
    // Read and check the manifest before the (possibly slow) source is opened.
    const loaded = manifestFile !== undefined ? await readManifest(manifestFile) : undefined;

    let source: ModelSource;
    if (v['hf-dir'] !== undefined) source = await openHfDir(v['hf-dir'] as string);
    else if (v.gguf !== undefined) source = await openGguf(v.gguf as string);
    else source = await openLlama2c(v.llama2c as string, v.tokenizer as string);
    const progress = new Progress('converting', process.stderr, !v.quiet);
    const pool = loaded ? new ClipSearchPool({ threads }) : undefined;
    try {
      // Every manifest problem (and a manifest for another model) is reported here, before anything is written.
      const plan: ExportPlan | undefined = loaded ? planExport(loaded, source.config, source.tensors, { force: v.force === true, pool }) : undefined;
      const t0 = performance.now();
      const header = await withAbortOnSignal((register) =>
        exportIebin(source, outDir, {
          converter: CONVERTER,
          dtype,
          pretranspose: v.pretranspose === true,
          blockK,
          ...(plan?.options ?? {}),
          onWriter: (w) => register(() => w.abortSync()),
          onProgress: (p) => progress.update(p.bytesDone, p.bytesTotal, `${p.index + 1}/${p.count} ${p.tensor}`),
        }),
      );
      progress.done();
      const secs = (performance.now() - t0) / 1000;
      io.out(`wrote ${outDir}: ${header.tensors.length} tensors, ${bytes(header.bin.bytes)} (${int(header.bin.bytes)} bytes) in ${secs.toFixed(1)} s, peak RSS ${bytes(peakRss())}`);
      for (const n of header.provenance.notes ?? []) io.out(`  note: ${n}`);
      if (plan && loaded) {
        const counts = new Map<string, number>();
        for (const p of plan.plans) if (p.quant) counts.set(p.scheme, (counts.get(p.scheme) ?? 0) + 1);
        const what = [...counts].map(([k, n]) => `${n} ${k}`).join(', ') || 'no quantized tensors';
        io.out(`  packed per ${manifestFile} (${loaded.manifest.kind}${loaded.manifest.kind === 'expanded' ? `, ${loaded.manifest.status}` : ''}, sha256 ${loaded.sha256.slice(0, 12)}…): ${what}; recorded in model.ie.json "quantization"`);
        if (loaded.manifest.kind === 'expanded' && loaded.manifest.status === 'rejected') io.out('  warning: the manifest failed its calibration gate (exported because of --force)');
      }
      return EXIT.OK;
    } finally {
      await pool?.close();
      await source.close();
    }
  },
};
