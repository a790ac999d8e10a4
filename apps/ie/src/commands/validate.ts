import { readdir } from 'node:fs/promises';
import { IebinReader } from '@ie/format';
import type { Command } from '../command.js';
import { EXIT } from '../errors.js';
import { bytes, int } from '../human.js';
import { Progress } from '../progress.js';

export const validate: Command = {
  name: 'validate',
  summary: 'check a model\'s structure; --deep also verifies every checksum',
  usage: 'ie validate MODEL_DIR [--deep] [--json] [--quiet]',
  positionals: [1, 1],
  options: { deep: { type: 'boolean' }, json: { type: 'boolean' }, quiet: { type: 'boolean' } },
  async run(v, [path], io) {
    // Structural validation is IebinReader.open: it throws a typed error on the first problem.
    const r = await IebinReader.open(path);
    try {
      const partials = (await readdir(r.directory)).filter((n) => n.includes('.partial-'));
      const report = v.deep ? await r.verify(((p) => (d: number, t: number) => p.update(d, t))(new Progress('verifying', process.stderr, !v.quiet && !v.json))) : null;
      const ok = !report || report.ok;
      if (v.json) {
        io.out(JSON.stringify({ ok, path, tensors: r.tensors.length, binBytes: r.header.bin.bytes, deep: !!v.deep, problems: report?.problems ?? [], leftoverPartialFiles: partials }, null, 2));
      } else {
        io.out(`structure ok: ${r.tensors.length} tensors, ${bytes(r.header.bin.bytes)}, every range aligned, contiguous and inside ${r.header.bin.file}; config and tensor table agree`);
        if (report) {
          if (report.ok) io.out(`checksums ok: ${report.tensorsChecked} tensors, ${int(report.bytesChecked)} bytes, padding zero${r.header.tokenizer.model === 'hf' ? ', tokenizer.json sha256 matches' : ''}`);
          for (const p of report.problems) io.out(`problem: ${p.message} [${p.code}] (${p.field})`);
        }
        for (const p of partials) io.out(`note: leftover partial file ${p} from an interrupted export (the next export into this directory removes it)`);
      }
      return ok ? EXIT.OK : EXIT.INVALID_MODEL;
    } finally {
      await r.close();
    }
  },
};
