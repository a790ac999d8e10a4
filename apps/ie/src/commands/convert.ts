import { rm } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { FLOAT_DTYPES, exportIebin, openGguf, openHfDir, openLlama2c, type ModelSource } from '@ie/format';
import {
  ClipSearchPool,
  manifestCalibrationPath,
  manifestSha256,
  readCalibrationText,
  parseManifest,
  planExport,
  readManifest,
  type ExportPlan,
  type LoadedManifest,
} from '@ie/quant';
import { buildTokenizer, quantizeModel } from '@ie/runtime';
import { choice, intFlag, withAbortOnSignal, type Command } from '../command.js';
import { CliError, EXIT } from '../errors.js';
import { bytes, int, peakRss } from '../human.js';
import { Progress } from '../progress.js';
import { CONVERTER } from '../version.js';

export const convert: Command = {
  name: 'convert',
  summary: 'convert a Hugging Face directory, llama2.c checkpoint or GGUF file to IEBIN',
  usage:
    'ie convert (--hf-dir DIR [--tokenizer tokenizer.json] | --llama2c FILE --tokenizer FILE | --gguf FILE) --out-dir DIR [--dtype f32|f16|bf16] [--pretranspose] [--block-k N] [--q4-map MANIFEST.json [--calib FILE | --no-gate] [--force] [--threads N]] [--quiet]',
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
    calib: { type: 'string' },
    'no-gate': { type: 'boolean' },
    force: { type: 'boolean' },
    threads: { type: 'string' },
    quiet: { type: 'boolean' },
  },
  async run(v, _p, io) {
    const sources = ['hf-dir', 'llama2c', 'gguf'].filter((k) => v[k] !== undefined);
    if (sources.length !== 1)
      throw new CliError('CLI_USAGE', `give exactly one source: --hf-dir, --llama2c (with --tokenizer) or --gguf\nusage: ${this.usage}`);
    if (v.llama2c !== undefined && v.tokenizer === undefined)
      throw new CliError('CLI_USAGE', '--llama2c needs --tokenizer FILE (the tokenizer.bin that goes with the checkpoint)');
    if (v.gguf !== undefined && v.tokenizer !== undefined)
      throw new CliError(
        'CLI_USAGE',
        '--tokenizer goes with --llama2c (tokenizer.bin) or --hf-dir (a tokenizer.json kept elsewhere); a GGUF file carries its tokenizer',
      );
    const outDir = v['out-dir'];
    if (typeof outDir !== 'string' || outDir === '') throw new CliError('CLI_USAGE', `--out-dir is required\nusage: ${this.usage}`);
    const dtype = choice(v, 'dtype', FLOAT_DTYPES);
    const blockK = intFlag(v, 'block-k', 64, 1 << 20);
    if (blockK !== undefined && blockK % 64 !== 0) throw new CliError('CLI_USAGE', `--block-k must be a multiple of 64, got ${blockK}`);
    if (blockK !== undefined && v.pretranspose) throw new CliError('CLI_USAGE', '--pretranspose and --block-k cannot be combined');
    const manifestFile = v['q4-map'] as string | undefined;
    if (manifestFile !== undefined) {
      const clash = (['dtype', 'pretranspose', 'block-k'] as const).filter((f) => v[f] !== undefined);
      if (clash.length)
        throw new CliError(
          'CLI_USAGE',
          `--q4-map decides every tensor's encoding and layout; drop ${clash.map((f) => `--${f}`).join(', ')} and put it in the manifest (a rule such as {"match": "token_embd.weight", "scheme": "f16"}, or "layout": {"block_k": 256})`,
        );
    } else if (v.force || v.threads !== undefined || v.calib !== undefined || v['no-gate']) {
      const flag = v.force ? '--force' : v.threads !== undefined ? '--threads' : v.calib !== undefined ? '--calib' : '--no-gate';
      throw new CliError('CLI_USAGE', `${flag} goes with --q4-map (a quantization manifest)`);
    }
    if (v.calib !== undefined && v['no-gate'])
      throw new CliError('CLI_USAGE', '--calib sets the text the gate measures on; --no-gate skips the gate: give one of them');
    const threads = intFlag(v, 'threads', 1, 1024);
    // Read and check the manifest before the (possibly slow) source is opened.
    let loaded = manifestFile !== undefined ? await readManifest(manifestFile) : undefined;
    const noGate = v['no-gate'] === true;
    if (loaded?.manifest.kind === 'expanded' && (noGate || v.calib !== undefined))
      throw new CliError(
        'CLI_USAGE',
        `${manifestFile} is an expanded manifest: it was measured by ie quantize and is checked against this model by its tensors' hashes; --no-gate and --calib apply to a policy`,
      );
    // --calib may name any regular file; a manifest's calibration.text only one under its own directory or the working directory.
    const calibFile =
      loaded?.manifest.kind === 'policy' && !noGate
        ? ((v.calib as string | undefined) ??
          (loaded.manifest.calibration?.text
            ? await manifestCalibrationPath(manifestFile as string, loaded.manifest.calibration.text)
            : undefined))
        : undefined;
    if (loaded?.manifest.kind === 'policy' && !noGate && !calibFile)
      throw new CliError(
        'CLI_USAGE',
        `${manifestFile} names no calibration text (calibration.text) for its gate; pass --calib FILE (or --no-gate to export unmeasured)`,
      );
    const calibText = calibFile ? await readCalibrationText(calibFile) : undefined;

    let source: ModelSource;
    if (v['hf-dir'] !== undefined)
      source = await openHfDir(v['hf-dir'] as string, v.tokenizer !== undefined ? { tokenizer: v.tokenizer as string } : {});
    else if (v.gguf !== undefined) source = await openGguf(v.gguf as string);
    else source = await openLlama2c(v.llama2c as string, v.tokenizer as string);
    const progress = new Progress('converting', process.stderr, !v.quiet);
    try {
      // The tokenizer is built and probed (encode, then decode, a test text) before anything is
      // written: a malformed one is IE_TOKENIZER_INVALID here, not a stack trace at generate time.
      const tokFile =
        source.tokenizer.model === 'hf' ? source.tokenizer.source : ((v.llama2c !== undefined ? v.tokenizer : v.gguf) as string);
      await buildTokenizer(source.tokenizer, source.config, { file: tokFile, sourceFormat: source.format });
    } catch (e) {
      await source.close();
      throw e;
    }
    const pool = loaded ? new ClipSearchPool({ threads }) : undefined;
    try {
      if (loaded?.manifest.kind === 'policy' && calibText !== undefined) {
        // The gate: measure the policy on this model first; nothing is written unless it passes.
        const measured = await measurePolicy(
          source,
          loaded,
          { text: calibText, file: calibFile as string },
          outDir,
          threads,
          v.quiet === true,
          io,
        );
        if (!measured) return EXIT.GATE_FAILED;
        loaded = measured;
      }
      // Every manifest problem (and a manifest for another model) is reported here, before anything is written.
      const plan: ExportPlan | undefined = loaded
        ? planExport(loaded, source.config, source.tensors, { force: v.force === true, pool })
        : undefined;
      if (plan?.options.quantization && noGate) {
        plan.options.quantization.gate = { status: 'skipped', reason: 'ie convert --no-gate: exported without measuring the policy' };
        io.err(
          'ie: WARNING: --no-gate: the quantized model was not measured against its gate; its quality is unknown (model.ie.json records "gate": {"status": "skipped"})',
        );
      }
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
      io.out(
        `wrote ${outDir}: ${header.tensors.length} tensors, ${bytes(header.bin.bytes)} (${int(header.bin.bytes)} bytes) in ${secs.toFixed(1)} s, peak RSS ${bytes(peakRss())}`,
      );
      for (const n of header.provenance.notes ?? []) io.out(`  note: ${n}`);
      if (plan && loaded) {
        const counts = new Map<string, number>();
        for (const p of plan.plans) if (p.quant) counts.set(p.scheme, (counts.get(p.scheme) ?? 0) + 1);
        const what = [...counts].map(([k, n]) => `${n} ${k}`).join(', ') || 'no quantized tensors';
        const how =
          loaded.manifest.kind === 'expanded'
            ? loaded.file === manifestFile
              ? `expanded, ${loaded.manifest.status}`
              : 'measured now, gate passed'
            : 'policy, not measured';
        io.out(
          `  packed per ${manifestFile} (${how}, sha256 ${loaded.sha256.slice(0, 12)}…): ${what}; recorded in model.ie.json "quantization"`,
        );
        if (loaded.manifest.kind === 'expanded' && loaded.manifest.status === 'rejected')
          io.out('  warning: the manifest failed its calibration gate (exported because of --force)');
      }
      return EXIT.OK;
    } finally {
      await pool?.close();
      await source.close();
    }
  },
};

/**
 * Runs the policy's calibration and gate on the source (exported unquantized to a scratch
 * directory beside the output, removed afterwards) and returns the accepted expanded manifest,
 * or prints why the gate failed and returns undefined.
 */
async function measurePolicy(
  source: ModelSource,
  policy: LoadedManifest,
  calibration: { text: string; file: string },
  outDir: string,
  threads: number | undefined,
  quiet: boolean,
  io: { out(s: string): void; err(s: string): void },
): Promise<LoadedManifest | undefined> {
  const scratch = join(dirname(resolve(outDir)), `.${basename(resolve(outDir))}.gate-${process.pid}`);
  const progress = new Progress('measuring', process.stderr, !quiet);
  try {
    await exportIebin(source, scratch, { converter: CONVERTER });
    const r = await quantizeModel(scratch, {
      policy,
      calibration,
      context: threads ? { threads } : {},
      onProgress: (p) => progress.update(p.done, p.total, `${p.stage}${p.detail ? ` ${p.detail}` : ''}`),
    });
    progress.done();
    const e = r.endToEnd;
    io.out(
      `gate on ${basename(calibration.file)}: mean KL ${e.kl_mean.toFixed(5)} nats, top-1 agreement ${(e.top1 * 100).toFixed(2)}% over ${e.positions} positions`,
    );
    if (!r.accepted) {
      for (const f of r.failures) io.out(`  fails: ${f}`);
      io.err(
        `ie: REJECTED: ${policy.file} fails its calibration gate on this model; nothing written. Use a finer scheme for the failing tensors, method "awq", or relax the gate (or --no-gate to export unmeasured)`,
      );
      return undefined;
    }
    return { manifest: parseManifest(r.json, policy.file), file: `${policy.file} (measured)`, sha256: manifestSha256(r.json) };
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}
