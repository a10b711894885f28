#!/usr/bin/env node
import { dropOutputOnClosedPipe } from './closed-pipe.js';
import { main } from './program.js';

dropOutputOnClosedPipe(process.stdout);
dropOutputOnClosedPipe(process.stderr);

// Long-running commands (serve, proxy, dev) keep the event loop alive and
// set process.exitCode themselves; short ones return their code here.
main(process.argv).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`togather: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  },
);
