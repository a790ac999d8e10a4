import { defineConfig } from 'tsup';
import { libraryBuild } from '../../tsup.shared';

// shims: import.meta.url in the CJS build (the loader finds the addon relative to itself).
export default defineConfig({ ...libraryBuild, shims: true });
