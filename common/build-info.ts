import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

export interface BuildInfo {
  version: string;
  git_commit: string;
  build_date: string;
}

/**
 * Build metadata written by scripts/write-build-info.mjs next to the compiled
 * code (dist/build-info.json), so it is fixed at build time rather than read
 * from the environment at run time. Read once, at first use.
 */
let cached: BuildInfo | undefined;

export function buildInfo(): BuildInfo {
  if (cached) return cached;
  const here = dirname(fileURLToPath(import.meta.url));
  // dist/common/build-info.js -> dist/build-info.json
  const file = join(here, '..', 'build-info.json');
  try {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as Partial<BuildInfo>;
    cached = {
      version: parsed.version ?? 'dev',
      git_commit: parsed.git_commit ?? 'unknown',
      build_date: parsed.build_date ?? 'unknown',
    };
  } catch {
    cached = { version: 'dev', git_commit: 'unknown', build_date: 'unknown' };
  }
  return cached;
}
