// Writes quant/q4_manifest.schema.json from MANIFEST_SCHEMA (src/manifest/schema.ts), the one source.
// Run after changing the schema: pnpm --filter @ie/quant run schema (a test fails until you do).
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { MANIFEST_SCHEMA } from '../dist/index.js';

const out = fileURLToPath(new URL('../../../quant/q4_manifest.schema.json', import.meta.url));
writeFileSync(out, `${JSON.stringify(MANIFEST_SCHEMA, null, 2)}\n`);
console.log(`wrote ${out}`);
