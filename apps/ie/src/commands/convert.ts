import { rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { FLOAT_DTYPES, exportIebin, type IebinHeader, openGguf, openHfDir, openLlama2c, type ModelSource } from '@ie/format';
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
import { threadsFlag } from '../flags.js';
import { defineCommand, type Io, withAbortOnSignal } from '../command.js';
import { CliError, EXIT } from '../errors.js';
import { bytes, int, peakRss } from '../human.js';
import { Progress } from '../progress.js';
import { CONVERTER } from '../version.js';

export const convert = defineCommand({
  name: 'convert',
  summary: 'convert a Hugging Face directory, llama2.c checkpoint or GGUF file to IEBIN',
  args: [],
  flags: {
    'hf-dir': {
      type: 'string',
      arg: 'DIR',
      oneOf: 'source',
      description: 'a Hugging Face directory: config.json, model.safetensors (or shards), tokenizer.json',
    },
    llama2c: { type: 'string', arg: 'FILE', oneOf: 'source', description: 'a llama2.c checkpoint (with --tokenizer tokenizer.bin)' },
    gguf: { type: 'string', arg: 'FILE', oneOf: 'source', description: 'a GGUF v3 file (it carries its tokenizer)' },
    tokenizer: {
      type: 'string',
      arg: 'FILE',
      description: "the llama2.c checkpoint's tokenizer.bin, or a tokenizer.json kept outside the --hf-dir",
    },
    'out-dir': { type: 'string', arg: 'DIR', required: true, description: 'the IEBIN directory to write (replaced atomically)' },
    dtype: {
      type: 'choice',
      arg: 'TYPE',
      choices: FLOAT_DTYPES,
      description: 'store the float tensors in this type',
      defaultText: "the source's",
    },
    pretranspose: { type: 'boolean', description: 'store the matrices transposed (K-major)' },
    'block-k': {
      type: 'number',
      integer: true,
      min: 64,
      max: 1 << 20,
      arg: 'N',
      description: 'store the matrices in blocks of N columns (a multiple of 64)',
      defaultText: 'row-major',
    },
    'q4-map': {
      type: 'string',
      arg: 'MANIFEST',
      description: 'quantize per this manifest: a policy is measured against its gate first; an expanded one is checked by hash',
    },
    calib: {
      type: 'string',
      arg: 'FILE',
      description: "the text the policy's gate measures on (with --q4-map)",
      defaultText: "the policy's calibration.text",
    },
    'no-gate': { type: 'boolean', description: 'export a policy unmeasured (with --q4-map); model.ie.json records the gate as skipped' },
    force: { type: 'boolean', description: 'export with a manifest that failed its gate (with --q4-map)' },
    threads: threadsFlag('threads for the clip search and the gate (with --q4-map)', 'every CPU'),
    quiet: { type: 'boolean', description: 'no progress on stderr' },
  },
  examples: [
    {
      command: 'ie convert --hf-dir models/tl-hf --out-dir models/tl --dtype bf16',
      does: 'a Hugging Face directory to IEBIN, matrices in bf16',
    },
    {
      command: 'ie convert --gguf models/s15m-q4_0.gguf --out-dir models/s15m-q4_0',
      does: "a GGUF file's tensors imported without loss, each in its own type",
    },
    {
      command: 'ie convert --hf-dir models/tl-hf --out-dir models/tl-q4 --q4-map quant/q4_manifest.json',
      does: 'int4 weights per the default policy, written only if the measured model passes its gate',
    },
  ],
  exits: ['BAD_INPUT', 'GATE_FAILED', 'INTERRUPTED', 'TERMINATED'],
  async run(v, _p, io) {
    checkCombinations(v);
    const outDir = v['out-dir'];
    const manifestFile = v['q4-map'];
    const threads = v.threads;
    const noGate = v['no-gate'] === true;
    // Read and check the manifest before the (possibly slow) source is opened.
    const gated = await readManifestAndCalibration(manifestFile, v.calib, noGate);
    let loaded = gated.loaded;
    const source = await openSourceChecked(v);
    const progress = new Progress('converting', process.stderr, !v.quiet);
    const pool = loaded ? new ClipSearchPool({ threads }) : undefined;
    try {
      if (loaded?.manifest.kind === 'policy' && gated.calib) {
        // The gate: measure the policy on this model first; nothing is written unless it passes.
        const measured = await measurePolicy(source, loaded, gated.calib, outDir, threads, v.quiet === true, io);
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
          dtype: v.dtype,
          pretranspose: v.pretranspose === true,
          blockK: v['block-k'],
          ...(plan?.options ?? {}),
          onWriter: (w) => register(() => w.abortSync()),
          onProgress: (p) => progress.update(p.bytesDone, p.bytesTotal, `${p.index + 1}/${p.count} ${p.tensor}`),
        }),
      );
      progress.done(bytes(header.bin.bytes));
      reportExport(io, outDir, header, (performance.now() - t0) / 1000, plan && loaded ? { plan, loaded, manifestFile } : undefined);
      return EXIT.OK;
    } finally {
      await pool?.close();
      await source.close();
    }
  },
});

/**
 * The manifest (--q4-map) and, for a policy that will be measured, its calibration text: --calib
 * may name any regular file; a manifest's calibration.text only one under its own directory or
 * the working directory.
 */
async function readManifestAndCalibration(
  manifestFile: string | undefined,
  calibFlag: string | undefined,
  noGate: boolean,
): Promise<{ loaded?: LoadedManifest; calib?: { text: string; file: string } }> {
  if (manifestFile === undefined) return {};
  const loaded = await readManifest(manifestFile);
  if (loaded.manifest.kind === 'expanded') {
    if (noGate || calibFlag !== undefined)
      throw new CliError(
        'CLI_USAGE',
        `${manifestFile} is an expanded manifest: it was measured by ie quantize and is checked against this model by its tensors' hashes; --no-gate and --calib apply to a policy`,
      );
    return { loaded };
  }
  if (noGate) return { loaded };
  const named = loaded.manifest.calibration?.text;
  const file = calibFlag ?? (named ? await manifestCalibrationPath(manifestFile, named) : undefined);
  if (!file)
    throw new CliError(
      'CLI_USAGE',
      `${manifestFile} names no calibration text (calibration.text) for its gate; pass --calib FILE (or --no-gate to export unmeasured)`,
    );
  return { loaded, calib: { text: await readCalibrationText(file), file } };
}

/**
 * The source opened, its tokenizer built and probed (encode, then decode, a test text) before
 * anything is written: a malformed one is IE_TOKENIZER_INVALID here, not a stack trace at generate time.
 */
async function openSourceChecked(v: { 'hf-dir'?: string; gguf?: string; llama2c?: string; tokenizer?: string }): Promise<ModelSource> {
  let source: ModelSource;
  if (v['hf-dir'] !== undefined) source = await openHfDir(v['hf-dir'], v.tokenizer !== undefined ? { tokenizer: v.tokenizer } : {});
  else if (v.gguf !== undefined) source = await openGguf(v.gguf);
  else source = await openLlama2c(v.llama2c as string, v.tokenizer as string);
  try {
    const tokFile =
      source.tokenizer.model === 'hf' ? source.tokenizer.source : ((v.llama2c !== undefined ? v.tokenizer : v.gguf) as string);
    await buildTokenizer(source.tokenizer, source.config, { file: tokFile, sourceFormat: source.format });
  } catch (e) {
    await source.close();
    throw e;
  }
  return source;
}

/** What was written: size, time, peak RSS, the converter's notes, and what the manifest packed. */
function reportExport(
  io: Io,
  outDir: string,
  header: IebinHeader,
  secs: number,
  packed: { plan: ExportPlan; loaded: LoadedManifest; manifestFile: string | undefined } | undefined,
): void {
  io.out(
    `wrote ${outDir}: ${header.tensors.length} tensors, ${bytes(header.bin.bytes)} (${int(header.bin.bytes)} bytes) in ${secs.toFixed(1)} s, peak RSS ${bytes(peakRss())}`,
  );
  for (const n of header.provenance.notes ?? []) io.out(`  note: ${n}`);
  if (!packed) return;
  const { plan, loaded, manifestFile } = packed;
  const counts = new Map<string, number>();
  for (const p of plan.plans) if (p.quant) counts.set(p.scheme, (counts.get(p.scheme) ?? 0) + 1);
  const what = [...counts].map(([k, n]) => `${n} ${k}`).join(', ') || 'no quantized tensors';
  const how =
    loaded.manifest.kind === 'expanded'
      ? loaded.file === manifestFile
        ? `expanded, ${loaded.manifest.status}`
        : 'measured now, gate passed'
      : 'policy, not measured';
  io.out(`  packed per ${manifestFile} (${how}, sha256 ${loaded.sha256.slice(0, 12)}…): ${what}; recorded in model.ie.json "quantization"`);
  if (loaded.manifest.kind === 'expanded' && loaded.manifest.status === 'rejected')
    io.out('  warning: the manifest failed its calibration gate (exported because of --force)');
}

/** The flag combinations convert refuses, each with what to do instead (before anything is read). */
function checkCombinations(v: {
  llama2c?: string;
  gguf?: string;
  tokenizer?: string;
  dtype?: string;
  pretranspose?: boolean;
  'block-k'?: number;
  'q4-map'?: string;
  force?: boolean;
  threads?: number;
  calib?: string;
  'no-gate'?: boolean;
}): void {
  if (v.llama2c !== undefined && v.tokenizer === undefined)
    throw new CliError('CLI_USAGE', '--llama2c needs --tokenizer FILE (the tokenizer.bin that goes with the checkpoint)');
  if (v.gguf !== undefined && v.tokenizer !== undefined)
    throw new CliError(
      'CLI_USAGE',
      '--tokenizer goes with --llama2c (tokenizer.bin) or --hf-dir (a tokenizer.json kept elsewhere); a GGUF file carries its tokenizer',
    );
  if (v['block-k'] !== undefined && v['block-k'] % 64 !== 0)
    throw new CliError('CLI_USAGE', `--block-k must be a multiple of 64, got ${v['block-k']}`);
  if (v['block-k'] !== undefined && v.pretranspose) throw new CliError('CLI_USAGE', '--pretranspose and --block-k cannot be combined');
  if (v['q4-map'] !== undefined) {
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
}

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
    // Ctrl-C here removes the scratch model too (the finally below never runs on a signal).
    const r = await withAbortOnSignal(async (register) => {
      register(() => rmSync(scratch, { recursive: true, force: true }));
      await exportIebin(source, scratch, { converter: CONVERTER });
      return quantizeModel(scratch, {
        policy,
        calibration,
        context: threads ? { threads } : {},
        onProgress: (p) => progress.update(p.done, p.total, p.detail ?? '', p.stage),
      });
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
