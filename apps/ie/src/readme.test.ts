/**
 * The README's TypeScript samples compile against the packages as built: each ```ts block, in order,
 * becomes one module type-checked with the repository's compiler settings (a sample that names a
 * method or option the API no longer has fails here, not in a user's editor).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(__dirname, '..', '..', '..');

describe('the README', () => {
  it('has TypeScript samples that compile', () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    const blocks = [...readme.matchAll(/```ts\n([\s\S]*?)```/g)].map((m) => m[1]);
    expect(blocks.length).toBeGreaterThan(0);
    // Inside apps/ie so that '@ie/runtime' resolves as it does for the CLI.
    const dir = mkdtempSync(join(__dirname, '..', '.readme-check-'));
    try {
      writeFileSync(join(dir, 'readme.ts'), `export {};\n${blocks.join('\n')}`);
      const tsc = createRequire(__filename).resolve('typescript/bin/tsc');
      const r = spawnSync(
        process.execPath,
        [
          tsc,
          '--noEmit',
          '--strict',
          '--target',
          'ES2022',
          '--lib',
          'ES2022,ESNext.Disposable',
          '--module',
          'ESNext',
          '--moduleResolution',
          'Bundler',
          '--types',
          'node',
          '--skipLibCheck',
          join(dir, 'readme.ts'),
        ],
        { encoding: 'utf8', cwd: join(__dirname, '..') },
      );
      expect(`${r.stdout}${r.stderr}`).toBe('');
      expect(r.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
