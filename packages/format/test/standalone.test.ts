/**
 * @ie/format stands alone: its packed tarball installs with plain npm into an empty folder
 * and works from both `import` and `require`, pulling in no other @ie package and no
 * native build.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const pkgDir = join(dirname(fileURLToPath(import.meta.url)), '..');

function pack(dest: string): string {
  // pnpm pack when the tests run under pnpm (as in CI), npm pack otherwise: same tarball for a package without workspace deps.
  const execpath = process.env.npm_execpath ?? '';
  const out = /pnpm/.test(execpath)
    ? execFileSync(process.execPath, [execpath, 'pack', '--pack-destination', dest], { cwd: pkgDir, encoding: 'utf8' })
    : execFileSync('npm', ['pack', '--pack-destination', dest], { cwd: pkgDir, encoding: 'utf8' });
  const tgz = readdirSync(dest).find((f) => f.endsWith('.tgz'));
  if (!tgz) throw new Error(`no tarball: ${out}`);
  return join(dest, tgz);
}

describe('@ie/format as a standalone npm package', () => {
  it('installs from its tarball with npm and works via import and require', () => {
    const work = mkdtempSync(join(tmpdir(), 'ie-standalone-'));
    const tgz = pack(work);
    const app = join(work, 'app');
    execFileSync('mkdir', ['-p', app]);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true }));
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--offline', tgz], { cwd: app, encoding: 'utf8' });
    const installed = readdirSync(join(app, 'node_modules'), { recursive: true }) as string[];
    expect(installed.filter((p) => p.startsWith('@ie') && p.split('/').length === 2)).toEqual(['@ie/format']);
    expect(installed.some((p) => p.endsWith('.node') || p.endsWith('binding.gyp'))).toBe(false);
    const script = (mod: string) => `
      const f = ${mod};
      const src = f.synthModel('tiny', { seed: 3 });
      const dir = require('node:path').join(${JSON.stringify(work)}, 'm-' + Math.random());
      f.exportIebin(src, dir, { converter: 'standalone' })
        .then(() => f.IebinReader.open(dir))
        .then(async (r) => {
          const v = await r.verify();
          console.log(JSON.stringify({ ok: v.ok, tensors: r.tensors.length, f16: f.f32ToF16Bits(1) }));
        });`;
    const cjs = execFileSync(process.execPath, ['-e', script("require('@ie/format')")], { cwd: app, encoding: 'utf8' });
    writeFileSync(
      join(app, 'esm.mjs'),
      `import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);\n${script("await import('@ie/format')")}`,
    );
    const esm = execFileSync(process.execPath, [join(app, 'esm.mjs')], { cwd: app, encoding: 'utf8' });
    for (const out of [cjs, esm]) expect(JSON.parse(out.trim())).toEqual({ ok: true, tensors: 21, f16: 0x3c00 });
  });
});
