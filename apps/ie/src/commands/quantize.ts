import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { writeFileAtomic } from '@ie/format';
import { manifestCalibrationPath, readCalibrationText, readManifest, type ExpandedManifest } from '@ie/quant';
import { quantizeModel } from '@ie/runtime';
import { threadsFlag } from '../flags.js';
import { defineCommand, withCleanupOnSignal } from '../command.js';
import { CliError, EXIT } from '../errors.js';
import { bytes, table } from '../human.js';
import { Progress } from '../progress.js';

function range(xs: number[], digits: number): string {
  return xs.length ? `${Math.min(...xs).toFixed(digits)} .. ${Math.max(...xs).toFixed(digits)}` : '-';
}

/** Per-tensor table and, per tensor kind (attn_q, ffn_down, ...), the range of its figures. */
function report(m: ExpandedManifest, all: boolean): string[] {
  const measured = m.tensors.filter((t) => t.quality);
  const lines: string[] = [];
  const rows = [['tensor', 'scheme', 'method', 'cosine', 'SNR dB', 'verdict']];
  for (const t of measured) {
    if (!all && t.verdict === 'pass' && measured.length > 40) continue;
    const q = t.quality as { cosine: number; snr_db: number };
    const scheme =
      t.scheme === 'int4w'
        ? `int4w g${t.group_size} ${t.mode === 'affine' ? 'aff' : 'sym'}`
        : t.scheme === 'int8w'
          ? `int8w ${t.granularity === 'per_row' ? 'row' : `g${t.group_size}`}`
          : t.scheme;
    rows.push([
      t.name,
      scheme,
      `${t.method ?? '-'}${t.alpha !== undefined ? ` a=${t.alpha}` : ''}`,
      q.cosine.toFixed(5),
      q.snr_db.toFixed(2),
      t.verdict,
    ]);
  }
  if (rows.length > 1) lines.push(table(rows, [3, 4]));
  if (!all && measured.length > 40) lines.push(`(${measured.length - rows.length + 1} passing tensors not listed; --all lists every one)`);
  const kinds = new Map<string, { cos: number[]; snr: number[] }>();
  for (const t of measured) {
    const kind = t.name.replace(/^blk\.\d+\./, '').replace(/\.weight$/, '');
    const k = kinds.get(kind) ?? { cos: [], snr: [] };
    k.cos.push((t.quality as { cosine: number }).cosine);
    k.snr.push((t.quality as { snr_db: number }).snr_db);
    kinds.set(kind, k);
  }
  lines.push(
    '',
    table(
      [['kind', 'tensors', 'cosine', 'SNR dB'], ...[...kinds].map(([k, v]) => [k, String(v.cos.length), range(v.cos, 5), range(v.snr, 2)])],
      [1],
    ),
  );
  return lines;
}

export const quantize = defineCommand({
  name: 'quantize',
  summary: 'quantize a model per policy, measure it on calibration text, and write the expanded manifest if it passes the gate',
  args: [{ name: 'MODEL_DIR', description: 'the unquantized IEBIN model to measure' }],
  flags: {
    policy: {
      type: 'string',
      arg: 'POLICY.json',
      required: true,
      description: 'the quantization policy: rules, methods, calibration and gate (quant/q4_manifest.json is the default one)',
    },
    out: { type: 'string', arg: 'MANIFEST.json', required: true, description: 'where the expanded manifest goes (replaced atomically)' },
    calib: { type: 'string', arg: 'FILE', description: 'calibration text', defaultText: "the policy's calibration.text" },
    force: { type: 'boolean', description: 'write the manifest even when the gate fails (marked "rejected")' },
    all: { type: 'boolean', description: 'list every tensor in the table, passing ones too' },
    threads: threadsFlag('threads for the clip search and the kernels', 'every CPU'),
    json: { type: 'boolean', description: 'print the result as one JSON object instead of the tables' },
    quiet: { type: 'boolean', description: 'no progress on stderr' },
  },
  examples: [
    {
      command: 'ie quantize models/stories260K --policy quant/q4_manifest.json --out quant/stories260K_q4.json',
      does: 'measure the default int4 policy; then ie convert … --q4-map quant/stories260K_q4.json exports per it',
    },
    {
      command: 'ie quantize models/tl --policy quant/q8_manifest.json --out /tmp/tl_q8.json --calib benchmarks/heldout_stories.txt --json',
      does: 'the int8 policy measured on other text, the figures as JSON',
    },
  ],
  exits: ['BAD_INPUT', 'GATE_FAILED'],
  async run(v, [model], io) {
    const { policy: policyFile, out, threads } = v;
    // Fail now, not after minutes of work, when the manifest could not be written.
    try {
      await access(dirname(resolve(out)), constants.W_OK);
    } catch {
      throw new CliError('CLI_USAGE', `--out ${out}: the directory ${dirname(resolve(out))} does not exist or is not writable`);
    }
    const loaded = await readManifest(policyFile);
    if (loaded.manifest.kind !== 'policy')
      throw new CliError(
        'CLI_USAGE',
        `${policyFile} is an expanded manifest (written by ie quantize); --policy takes a policy (kind "policy"), such as quant/q4_manifest.json`,
      );
    // --calib may name any regular file; the policy's calibration.text only one under its own directory or the working directory.
    const calibFile =
      v.calib ??
      (loaded.manifest.calibration?.text ? await manifestCalibrationPath(policyFile, loaded.manifest.calibration.text) : undefined);
    if (!calibFile) throw new CliError('CLI_USAGE', `${policyFile} names no calibration text (calibration.text); pass --calib FILE`);
    const text = await readCalibrationText(calibFile);
    const progress = new Progress('quantizing', process.stderr, !v.quiet && !v.json);
    const t0 = performance.now();
    const r = await quantizeModel(model, {
      policy: loaded,
      calibration: { text, file: calibFile },
      context: threads ? { threads } : {},
      onProgress: (p) => progress.update(p.done, p.total, p.detail ?? '', p.stage),
    });
    progress.done();
    const secs = (performance.now() - t0) / 1000;
    const m = r.manifest;
    const written = r.accepted || v.force === true;
    // Through an exclusive temporary file with an unpredictable name, fsynced and renamed: readers see
    // the old manifest or the new one, and a symlink planted at either name is never followed.
    if (written) await withCleanupOnSignal(dirname(resolve(out)), () => writeFileAtomic(out, r.json));
    const e2e = r.endToEnd;
    if (v.json) {
      io.out(
        JSON.stringify(
          {
            status: m.status,
            written: written ? out : null,
            failures: r.failures,
            end_to_end: e2e,
            bytes_per_token: r.bytesPerToken,
            calibration_tokens: r.calibrationTokens,
            seconds: Number(secs.toFixed(2)),
            tensors: m.tensors
              .filter((t) => t.quality)
              .map((t) => ({ name: t.name, scheme: t.scheme, method: t.method, ...t.quality, verdict: t.verdict })),
          },
          null,
          2,
        ),
      );
    } else {
      for (const l of report(m, v.all === true)) io.out(l);
      io.out('');
      io.out(
        `end to end over ${e2e.positions} positions (${m.calibration?.sequences} sequences of ${m.calibration?.text}): mean KL ${e2e.kl_mean.toFixed(5)} nats (max ${e2e.kl_max.toFixed(3)}), top-1 agreement ${(e2e.top1 * 100).toFixed(2)}%`,
      );
      const t = m.gate.thresholds;
      io.out(
        `gate: cosine >= ${t.min_cosine}, SNR >= ${t.min_snr_db} dB per tensor; mean KL <= ${t.max_kl}, top-1 >= ${t.min_top1} end to end`,
      );
      io.out(
        `weights per token: ${bytes(r.bytesPerToken.before)} -> ${bytes(r.bytesPerToken.after)} (${(r.bytesPerToken.before / r.bytesPerToken.after).toFixed(2)}x smaller), ${secs.toFixed(1)} s`,
      );
      if (r.accepted) io.out(`accepted: wrote ${out}; export with ie convert ... --q4-map ${out}`);
      else {
        for (const f of r.failures) io.out(`  fails: ${f}`);
        io.out(
          written
            ? `REJECTED: wrote ${out} marked "rejected" (--force); ie convert refuses it unless forced too`
            : `REJECTED: no manifest written. Use a finer scheme for the failing tensors (smaller group, int8w, or keep them), try method "awq", or relax the gate; --force writes it marked rejected`,
        );
      }
    }
    return r.accepted ? EXIT.OK : EXIT.GATE_FAILED;
  },
});
