// The hash of everything the addon is compiled from; the build records it beside the addon and
// the loader compares it, so a stale addon is reported instead of silently used.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';

export function sourcesHash(pkgDir) {
  const files = ['binding.gyp'];
  const walk = (d) => {
    for (const e of readdirSync(join(pkgDir, d), { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.(cc|h)$/.test(e.name)) files.push(p);
    }
  };
  walk('native');
  const h = createHash('sha256');
  for (const f of files) h.update(relative('.', f)).update('\0').update(readFileSync(join(pkgDir, f))).update('\0');
  return h.digest('hex');
}
