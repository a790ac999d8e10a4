#!/usr/bin/env node
import { describeError, EXIT } from './errors.js';
import { main } from './main.js';

// `ie inspect … | head` closes stdout early: that is not an error.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(EXIT.OK);
  throw e;
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e) => {
    process.stderr.write(`${describeError(e)}\n`);
    process.exitCode = EXIT.FAILURE;
  },
);
