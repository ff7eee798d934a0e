import { defineConfig } from 'vite';
import { svelte } from '@sveltejs/vite-plugin-svelte';
import { gzipSync, constants } from 'node:zlib';
import { readdirSync, readFileSync, writeFileSync, unlinkSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

// The device serves `name.gz` for `name` with Content-Encoding: gzip, so the
// www slot only needs the compressed copy. index.html stays uncompressed as
// well, so that `/` works even for a client that does not accept gzip.
function gzipOutput() {
  let outDir;
  return {
    name: 'aloft-gzip-output',
    apply: 'build',
    configResolved(config) {
      outDir = config.build.outDir;
    },
    closeBundle() {
      const walk = (dir) =>
        readdirSync(dir).flatMap((name) => {
          const path = join(dir, name);
          return statSync(path).isDirectory() ? walk(path) : [path];
        });
      for (const path of walk(outDir)) {
        if (path.endsWith('.gz')) continue;
        const gz = gzipSync(readFileSync(path), { level: constants.Z_BEST_COMPRESSION });
        writeFileSync(`${path}.gz`, gz);
        if (relative(outDir, path) !== 'index.html') unlinkSync(path);
      }
    },
  };
}

export default defineConfig({
  base: './',
  plugins: [svelte(), gzipOutput()],
  build: {
    target: 'es2020',
    modulePreload: { polyfill: false },
    reportCompressedSize: false,
  },
});
