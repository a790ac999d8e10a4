import { defineConfig } from 'tsup';
import { libraryBuild } from '../../tsup.shared';

// The clip-search worker is its own entry (dist/clip-worker.js), found beside the bundle via import.meta.url (shimmed in CJS).
export default defineConfig({ ...libraryBuild, entry: { index: 'src/index.ts', 'clip-worker': 'src/ptq/clip-worker.ts' }, shims: true });
