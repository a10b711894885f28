/**
 * Files of the build (dist/): the tests run this folder as TypeScript from
 * the source tree, the benchmarks run its compiled copy in dist/harness/, and
 * both start the same built scripts (the CLI, the bench upstream).
 */
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
/** dist/ itself when this file runs compiled, else the dist/ beside the sources. */
const DIST = existsSync(join(HERE, '..', 'cli', 'togather.js'))
  ? join(HERE, '..')
  : join(HERE, '..', 'dist');

/** The path of `relative` inside dist/ (e.g. `cli/togather.js`). */
export function builtFile(relative: string): string {
  return join(DIST, relative);
}

/** The built CLI, `togather` (`npm test` and `npm run bench` build first). */
export const BUILT_CLI = builtFile('cli/togather.js');
