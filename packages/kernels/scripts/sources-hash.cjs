// The hash of everything the addon is compiled from; the build records it beside the addon and
// the loader compares it, so a stale addon is reported instead of silently used.
// CommonJS so that both the build script and the addon loader (ESM and CJS builds) can load it.
const { createHash } = require('node:crypto');
const { readdirSync, readFileSync } = require('node:fs');
const { join } = require('node:path');

function sourcesHash(pkgDir) {
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
  for (const f of files) h.update(f).update('\0').update(readFileSync(join(pkgDir, f))).update('\0');
  return h.digest('hex');
}

module.exports = { sourcesHash };
