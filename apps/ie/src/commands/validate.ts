import { readdir } from 'node:fs/promises';
import { IebinReader } from '@ie/format';
import { diffAgainstManifest, readManifest, type ManifestMismatch } from '@ie/quant';
import { defineCommand } from '../command.js';
import { EXIT } from '../errors.js';
import { bytes, int } from '../human.js';
import { Progress } from '../progress.js';
import { modelDirectory } from './model-dir.js';

export const validate = defineCommand({
  name: 'validate',
  summary:
    "check a model's structure; --deep also verifies every checksum; --manifest diffs every tensor's encoding against a quantization manifest",
  args: [{ name: 'MODEL_DIR', description: 'an IEBIN model directory, or a GGUF file (converted once into IE_CACHE_DIR)' }],
  flags: {
    deep: {
      type: 'boolean',
      description: "read the whole model: every tensor's CRC-32, NaN/Inf in float weights and scales, zero padding, the tokenizer's sha256",
    },
    manifest: {
      type: 'string',
      arg: 'MANIFEST.json',
      description: "compare every tensor's dtype, scheme, group size and scale type with a quantization manifest",
    },
    json: { type: 'boolean', description: 'print the report as one JSON object' },
    quiet: { type: 'boolean', description: 'no progress on stderr' },
  },
  examples: [
    { command: 'ie validate models/stories260K --deep', does: 'structure and every checksum' },
    {
      command: 'ie validate models/stories260K-q4 --manifest quant/stories260K_q4.json --json',
      does: 'the encodings an export was meant to have, as JSON',
    },
  ],
  exits: ['BAD_INPUT', 'INVALID_MODEL'],
  async run(v, [path], io) {
    // Structural validation is IebinReader.open: it throws a typed error on the first problem.
    const r = await IebinReader.open(await modelDirectory(path, io, { progress: !v.quiet && !v.json }));
    try {
      const partials = (await readdir(r.directory)).filter((n) => n.includes('.partial-'));
      const loaded = v.manifest !== undefined ? await readManifest(v.manifest) : undefined;
      const mismatches: ManifestMismatch[] | null = loaded ? diffAgainstManifest(loaded.manifest, r.tensors) : null;
      const recorded = (r.header.quantization as { manifest?: { sha256?: string } } | null)?.manifest?.sha256 ?? null;
      const report = v.deep
        ? await r.verify(
            (
              (p) => (d: number, t: number) =>
                p.update(d, t)
            )(new Progress('verifying', process.stderr, !v.quiet && !v.json)),
          )
        : null;
      const ok = (!report || report.ok) && (!mismatches || mismatches.length === 0);
      if (v.json) {
        io.out(
          JSON.stringify(
            {
              ok,
              path,
              tensors: r.tensors.length,
              binBytes: r.header.bin.bytes,
              deep: !!v.deep,
              problems: report?.problems ?? [],
              leftoverPartialFiles: partials,
              ...(loaded ? { manifest: { file: v.manifest, sha256: loaded.sha256, recordedSha256: recorded, mismatches } } : {}),
            },
            null,
            2,
          ),
        );
      } else {
        io.out(
          `structure ok: ${r.tensors.length} tensors, ${bytes(r.header.bin.bytes)}, every range aligned, contiguous and inside ${r.header.bin.file}; config and tensor table agree`,
        );
        if (report) {
          if (report.ok)
            io.out(
              `checksums ok: ${report.tensorsChecked} tensors, ${int(report.bytesChecked)} bytes, padding zero${r.header.tokenizer.model === 'hf' ? ', tokenizer.json sha256 matches' : ''}`,
            );
          for (const p of report.problems) io.out(`problem: ${p.message} [${p.code}] (${p.field})`);
        }
        if (loaded && mismatches) {
          if (mismatches.length === 0)
            io.out(
              `manifest ok: every tensor's dtype, scheme, group size, scale dtype${loaded.manifest.kind === 'expanded' ? ' and layout' : ''} is what ${v.manifest} says`,
            );
          for (const m of mismatches) io.out(`mismatch: ${m.tensor}: manifest says ${m.expected}, the model has ${m.actual}`);
          if (recorded === null) io.out('note: model.ie.json records no quantization manifest (it was not exported with --q4-map)');
          else if (recorded !== loaded.sha256)
            io.out(
              `note: the model was exported with another manifest (sha256 ${recorded.slice(0, 12)}…, this one is ${loaded.sha256.slice(0, 12)}…)`,
            );
        }
        for (const p of partials)
          io.out(`note: leftover partial file ${p} from an interrupted export (the next export into this directory removes it)`);
      }
      return ok ? EXIT.OK : EXIT.INVALID_MODEL;
    } finally {
      await r.close();
    }
  },
});
