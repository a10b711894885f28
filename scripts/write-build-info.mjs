// Fixes build metadata into dist/build-info.json: VERSION, GIT_COMMIT and
// BUILD_DATE from the build environment (Docker build args), else the package
// version, `git rev-parse --short HEAD` and the build time.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));

function gitCommit() {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], {
      stdio: ['ignore', 'pipe', 'ignore'],
    })
      .toString()
      .trim();
  } catch {
    return 'unknown';
  }
}

const commit = process.env.GIT_COMMIT || gitCommit() || 'unknown';
if (!/^[0-9a-fA-F]{7,40}$/.test(commit)) {
  // /health's `version` must be a commit SHA: it reports git's null id instead.
  process.stderr.write(
    `write-build-info: no git commit known (GIT_COMMIT="${commit}"); /health will report version ${'0'.repeat(40)}\n`,
  );
}

const info = {
  version: process.env.VERSION || pkg.version || 'dev',
  git_commit: commit,
  build_date: process.env.BUILD_DATE || new Date().toISOString(),
};
mkdirSync(new URL('../dist/', import.meta.url), { recursive: true });
writeFileSync(
  new URL('../dist/build-info.json', import.meta.url),
  JSON.stringify(info, null, 2) + '\n',
);
