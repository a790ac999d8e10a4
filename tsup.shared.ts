import type { Options } from 'tsup';

/** Build settings every published library shares: ESM + CJS + .d.ts for Node 20. */
export const libraryBuild: Options = {
  entry: ['src/index.ts'],
  format: ['esm', 'cjs'],
  dts: true,
  clean: true,
  sourcemap: true,
  target: 'node20',
  platform: 'node',
};
