// What the browser tests share: where the build and the artifacts are, the
// chromium they drive (Debian's, through playwright-core), time limits, and
// stopping a process they started by its PID.
//
// Environment (all optional): ALOFT_BUILD (default <repo>/build),
// ALOFT_ARTIFACTS (default $ALOFT_BUILD/test-artifacts), CHROMIUM (default
// /usr/bin/chromium).
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const build = resolve(process.env.ALOFT_BUILD ?? join(root, 'build'));
export const artifacts = resolve(process.env.ALOFT_ARTIFACTS ?? join(build, 'test-artifacts'));
const chromiumPath = process.env.CHROMIUM ?? '/usr/bin/chromium';

// Without chromium there is nothing to drive (CTest registers the tests only
// where it is installed): the test's skip reason, or false.
export const noChromium = existsSync(chromiumPath) ? false : `${chromiumPath} not found (apt-get install chromium)`;

export function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, fail) => {
      timer = setTimeout(() => fail(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

// SIGTERM, SIGKILL after 5 s; resolves once the child exited. Nothing to do
// when it is not running (or was never started).
export async function stopChild(child, name) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((ok) => child.once('exit', ok));
  process.kill(child.pid, 'SIGTERM');
  try {
    await withTimeout(gone, 5000, `${name} to stop on SIGTERM`);
  } catch {
    process.kill(child.pid, 'SIGKILL');
    await withTimeout(gone, 5000, `${name} to stop on SIGKILL`);
  }
}

export async function launchChromium(dir, viewport) {
  // A persistent context on a new, empty directory: playwright refuses
  // --user-data-dir in args, and this is the same thing.
  return chromium.launchPersistentContext(join(dir, 'profile'), {
    executablePath: chromiumPath,
    headless: true,
    timeout: 30000,
    viewport,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
}
