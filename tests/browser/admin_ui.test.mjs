// aloftd's admin web UI in Debian's chromium against a real aloftd: sign in
// (a wrong token first), upload two ESP-IDF images with the file picker, see
// the platform and both releases, have devices check in over the HTTPUpdate
// protocol and watch them appear, pin, start a rollout and advance it, turn
// the whitelist on and off, add and remove a signing key, upload a frontend.
// Also, without a browser: the UI's static serving (redirect, types, gzip), refused
// path traversal, and the page a server without a built UI answers.
// Leaves build/test-artifacts/admin-ui.png behind.
//
// Environment (all optional): ALOFT_BUILD (default <repo>/build; holds
// bin/aloftd, admin/ (web/admin/build.sh) and www.bin (web/device/build.sh),
// uploaded as a frontend), ALOFT_ARTIFACTS
// (default $ALOFT_BUILD/test-artifacts), ALOFT_FIXTURES (default
// <repo>/../shared/fixtures), CHROMIUM (default /usr/bin/chromium).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { createInterface } from 'node:readline';
import { gunzipSync } from 'node:zlib';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, createWriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createHash } from 'node:crypto';
import { artifacts, build, launchChromium, noChromium, root, stopChild, withTimeout } from './lib.mjs';

const fixtures = resolve(process.env.ALOFT_FIXTURES ?? join(root, '../shared/fixtures'));
const aloftd = join(build, 'bin/aloftd');
const uiDir = join(build, 'admin');
const wwwBin = join(build, 'www.bin');
const HOST = '127.0.0.3';
const TOKEN = 'admin-ui-test-token-5f1c2a9e7b';
const FW_OLD = join(fixtures, 'esp-idf/esp32s3-csi-node-v0.4.3.bin');
const FW_NEW = join(fixtures, 'esp-idf/esp32s3-csi-node-v0.6.4.bin');
const PLATFORM = 'esp32-csi-node';
// The versions in the two images' app descriptors (shared/fixtures/esp-idf/PROVENANCE.md).
const OLD = 'v0.4.3.1-esp32-3-g66e2fa083-dir';
const NEW = '0.6.4';
const re = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

// Starts aloftd on HOST, any free port, with a fresh data directory and the
// known admin token; resolves once it has said where the UI comes from and
// serves (its `serving on` line gives the port).
async function startAloftd(dir, extraArgs = []) {
  const tokenFile = join(dir, 'token');
  writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
  const log = createWriteStream(join(dir, 'aloftd.log'));
  const args = ['--listen', `${HOST}:0`, '--data', join(dir, 'data'), '--admin-token-file', tokenFile, ...extraArgs];
  const child = spawn(aloftd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const server = { child, lines: [] };
  child.stderr.pipe(log, { end: false });
  const exited = new Promise((_, fail) =>
    child.once('exit', (code, sig) => fail(new Error(`aloftd exited (${code ?? sig}); see ${dir}/aloftd.log`)))
  );
  exited.catch(() => {});
  const ready = new Promise((ok) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      log.write(`${line}\n`);
      server.lines.push(line);
      const m = line.match(/^aloftd: serving on http:\/\/([\d.]+):(\d+)\/$/);
      if (m) server.url = `http://${m[1]}:${m[2]}`;
      if (/^aloftd: admin UI/.test(line)) server.ui = true;
      if (server.url && server.ui) ok(); // the UI line comes first
    });
  });
  await withTimeout(Promise.race([ready, exited]), 15000, 'aloftd to start serving');
  return server;
}

// One HTTP request with the path sent exactly as given (fetch would
// normalise ../ away), optionally from a chosen loopback address.
function raw(url, path, { method = 'GET', headers = {}, localAddress } = {}) {
  const { hostname, port } = new URL(url);
  return withTimeout(
    new Promise((ok, fail) => {
      const req = request({ host: hostname, port, path, method, headers, localAddress }, (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => ok({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) }));
        res.on('error', fail);
      });
      req.on('error', fail);
      req.end();
    }),
    10000,
    `${method} ${path}`
  );
}

// A device's check-in, as Arduino's HTTPUpdate sends it (PROTOCOLS.md §3.1),
// from its own loopback address standing in for its LAN address; delta: the
// SHA-256 of its image, as a device that takes delta patches names it.
function checkIn(url, { mac, version, ip, delta }) {
  return raw(url, `/update?dev=${PLATFORM}&ver=${version}`, {
    localAddress: ip,
    headers: {
      ...(delta ? { 'X-Aloft-Delta': delta } : {}),
      'User-Agent': 'ESP32-http-Update',
      'x-ESP32-STA-MAC': mac,
      'x-ESP32-AP-MAC': mac,
      'x-ESP32-free-space': '1966080',
      'x-ESP32-sketch-size': '917504',
      'x-ESP32-sketch-md5': '0123456789abcdef0123456789abcdef',
      'x-ESP32-chip-size': '4194304',
      'x-ESP32-sdk-version': 'v5.1.2',
      'x-ESP32-mode': 'sketch',
    },
  });
}

const waitText = (page, sel, re, timeout) =>
  page.waitForFunction(
    ([s, src]) => new RegExp(src).test(document.querySelector(s)?.textContent ?? ''),
    [sel, re.source],
    { timeout }
  );

// Runs body({dir, server}) against a fresh aloftd; stops it, keeps the
// directory (aloftd.log) when the body fails.
async function withAloftd(args, body) {
  assert.ok(existsSync(aloftd), `${aloftd} not found: build it first (make build)`);
  const dir = mkdtempSync(join(tmpdir(), 'aloft-admin-ui-'));
  let server;
  let passed = false;
  try {
    server = await startAloftd(dir, args);
    await body({ dir, server });
    passed = true;
  } finally {
    await stopChild(server?.child, 'aloftd');
    if (passed) rmSync(dir, { recursive: true, force: true });
    else console.error(`kept ${dir} (aloftd.log)`);
  }
}

test('admin UI files: / redirects, types and gzip are right, path traversal is refused', { timeout: 60000 }, async () => {
  assert.ok(existsSync(join(uiDir, 'index.html')), `${uiDir}/index.html not found: web/admin/build.sh ${uiDir}`);
  // No --ui: the default, <bin>/../admin, is where the build put the UI.
  await withAloftd([], async ({ server }) => {
    assert.ok(server.lines.some((l) => l.startsWith('aloftd: admin UI at /admin/ from ')), server.lines.join('\n'));
    for (const path of ['/', '/admin']) {
      const r = await raw(server.url, path);
      assert.equal(r.status, 302, path);
      assert.equal(r.headers.location, '/admin/', path);
    }

    const index = await raw(server.url, '/admin/');
    assert.equal(index.status, 200);
    assert.equal(index.headers['content-type'], 'text/html; charset=utf-8');
    assert.equal(index.headers['content-encoding'], undefined);
    assert.deepEqual(index.body, readFileSync(join(uiDir, 'index.html')));
    const script = index.body.toString().match(/src="\.\/(assets\/[^"]+\.js)"/)?.[1];
    assert.ok(script, `no script in ${index.body}`);

    const plain = await raw(server.url, `/admin/${script}`);
    assert.equal(plain.status, 200);
    assert.equal(plain.headers['content-type'], 'text/javascript; charset=utf-8');
    assert.equal(plain.headers['content-encoding'], undefined);
    const gz = await raw(server.url, `/admin/${script}`, { headers: { 'Accept-Encoding': 'gzip, deflate' } });
    assert.equal(gz.status, 200);
    assert.equal(gz.headers['content-encoding'], 'gzip');
    assert.equal(gz.headers['content-type'], 'text/javascript; charset=utf-8');
    assert.deepEqual(gunzipSync(gz.body), plain.body);
    const refused = await raw(server.url, `/admin/${script}`, { headers: { 'Accept-Encoding': 'gzip;q=0' } });
    assert.equal(refused.headers['content-encoding'], undefined);

    // Outside the UI directory: the server's own executable (<build>/bin/aloftd)
    // and the token file the test wrote; raw and percent-encoded.
    const elf = createHash('sha256').update(readFileSync(aloftd)).digest('hex');
    for (const path of [
      '/admin/../bin/aloftd', '/admin/%2e%2e/bin/aloftd', '/admin/%2E%2E%2Fbin%2Faloftd', '/admin/..%2fbin/aloftd',
      '/admin/assets/../../bin/aloftd', '/admin/assets/%2e%2e/%2e%2e/bin/aloftd', '/admin/.%2e/bin/aloftd',
      '/admin/%252e%252e/bin/aloftd', '/admin//etc/passwd', '/admin/%2fetc/passwd', '/admin/.hidden',
      '/admin/..\\bin\\aloftd',
    ]) {
      const r = await raw(server.url, path);
      assert.notEqual(r.status, 200, path);
      assert.notEqual(createHash('sha256').update(r.body).digest('hex'), elf, path);
      assert.ok(r.status === 400 || r.status === 404, `${path}: ${r.status}`);
      assert.equal(r.headers['content-type'], 'application/json', path);
      assert.match(JSON.parse(r.body).error, /^(bad_path|not_found)$/, path);
    }
    assert.equal(JSON.parse((await raw(server.url, '/admin/../bin/aloftd')).body).error, 'bad_path');
    const missing = await raw(server.url, '/admin/assets/none.js');
    assert.equal(missing.status, 404);
    assert.equal(JSON.parse(missing.body).error, 'not_found');
    const post = await raw(server.url, '/admin/', { method: 'POST' });
    assert.equal(post.status, 405);
    // The files need no token; the API still does.
    assert.equal((await raw(server.url, '/api/platforms')).status, 401);
  });
});

test('admin UI not built: /admin/ answers 404 with a page that says how to build it', { timeout: 60000 }, async () => {
  const empty = mkdtempSync(join(tmpdir(), 'aloft-no-ui-'));
  try {
    await withAloftd(['--ui', empty], async ({ server }) => {
      assert.ok(server.lines.some((l) => l.includes('has no index.html (make www builds it')), server.lines.join('\n'));
      const r = await raw(server.url, '/admin/');
      assert.equal(r.status, 404);
      assert.equal(r.headers['content-type'], 'text/html; charset=utf-8');
      assert.match(r.body.toString(), /The admin UI is not built/);
      assert.match(r.body.toString(), /make www/);
      assert.ok(r.body.toString().includes(empty));
    });
  } finally {
    rmSync(empty, { recursive: true, force: true });
  }
});

test('admin UI: sign in, upload two releases, see devices check in live, pin, start and advance a rollout',
  { skip: noChromium, timeout: 270000 },
  async () => {
    for (const f of [FW_OLD, FW_NEW]) assert.ok(existsSync(f), `${f} not found (ALOFT_FIXTURES)`);
    assert.ok(existsSync(wwwBin), `${wwwBin} not found: web/device/build.sh makes it`);
    await withAloftd([], async ({ dir, server }) => {
      let browser;
      let page;
      let passed = false;
      try {
        browser = await launchChromium(dir, { width: 1280, height: 1000 });
        page = browser.pages()[0] ?? (await browser.newPage());
        page.setDefaultTimeout(20000);
        await page.goto(`${server.url}/`, { timeout: 20000 });
        assert.equal(new URL(page.url()).pathname, '/admin/');

        // A wrong token: the server's 401 reason, and still signed out.
        await page.fill('#token', 'not-the-admin-token-at-all');
        await page.click('#sign-in');
        await waitText(page, '#login-message', /refused the token \(401\): the token is not an admin token/);
        assert.equal(await page.locator('#firmware-file').count(), 0);

        await page.fill('#token', TOKEN);
        await page.click('#sign-in');
        await page.waitForSelector('#firmware-file');
        assert.equal(await page.evaluate(() => sessionStorage.getItem('aloft-admin-token')), TOKEN);

        // Two releases through the file picker; the descriptor names them.
        await page.setInputFiles('#firmware-file', FW_OLD);
        await page.click('#upload');
        await waitText(page, '#upload-result', new RegExp(`^Uploaded: esp32-csi-node firmware ${re(OLD)} \\(project esp32-csi-node, chip esp32s3, `));
        await page.setInputFiles('#firmware-file', FW_NEW);
        await page.click('#upload');
        await waitText(page, '#upload-result', /^Uploaded: esp32-csi-node firmware 0\.6\.4 .*, now current$/);
        // The same bytes again: recorded already, not a new release.
        await page.setInputFiles('#firmware-file', FW_NEW);
        await page.click('#upload');
        await waitText(page, '#upload-result', /^Already recorded: esp32-csi-node firmware 0\.6\.4/);
        // Not an image: the server's reason.
        const junk = join(dir, 'junk.bin');
        writeFileSync(junk, 'this is not a firmware image');
        await page.setInputFiles('#firmware-file', junk);
        await page.click('#upload');
        await waitText(page, '#upload-result', /^Refused: HTTP 4\d\d \w+: /);

        const row = `#platforms tr[data-platform="${PLATFORM}"]`;
        await waitText(page, `${row} .current`, /^0\.6\.4$/);
        assert.equal(await page.locator('#platform-name').innerText(), PLATFORM);
        const releases = '#firmware-releases';
        await waitText(page, `${releases} tr[data-version="0.6.4"] .badges`, /current/);
        assert.equal(await page.locator(`${releases} tbody tr`).count(), 2);
        assert.equal(await page.locator(`${releases} tr[data-version="${OLD}"] .badges`).innerText(), '');
        assert.equal(await page.locator(`${releases} .current-version`).innerText(), '0.6.4');

        // Three devices check in; the table shows them within its refresh.
        const devices = [
          { mac: '24:0A:C4:00:00:01', version: OLD, ip: '127.0.0.11',
            delta: createHash('sha256').update(readFileSync(FW_OLD)).digest('hex') },
          { mac: '24:0A:C4:00:00:02', version: OLD, ip: '127.0.0.12' },
          { mac: '24:0A:C4:00:00:03', version: '0.6.4', ip: '127.0.0.13' },
        ];
        const fwNew = readFileSync(FW_NEW);
        for (const d of devices) {
          const r = await checkIn(server.url, d);
          if (d.version === '0.6.4') {
            assert.equal(r.status, 304);
          } else {
            assert.equal(r.status, 200);
            assert.deepEqual(r.body, fwNew);
          }
        }
        for (const d of devices) {
          await waitText(page, `#devices tr[data-mac="${d.mac}"] .version`, new RegExp(`^${re(d.version)}$`), 15000);
          const cells = await page.locator(`#devices tr[data-mac="${d.mac}"] td`).allInnerTexts();
          assert.equal(cells[2], d.ip);
          assert.equal(cells[5], d.version === '0.6.4' ? '304 runs the current release 0.6.4' : '200 offered 0.6.4');
        }
        // The first device named its image: the server makes the patch from it in the
        // background (it got the image meanwhile), and the release shows the saving.
        // Making this 1 MB pair's patch takes about 10 s of CPU, several times that
        // under the sanitizers (make sanitize) with other tests beside it.
        await waitText(page, `${releases} tr[data-version="0.6.4"] .delta`,
                       new RegExp(`^\\s*from ${re(OLD)}:\\s*[\\d,]+ B, 1\\d(\\.\\d)? % —\\s*saves [\\d,]+ B a device`), 150000);

        // Pin the old release, then roll the new one out stage by stage.
        await page.click(`${releases} tr[data-version="${OLD}"] .pin-button`);
        await waitText(page, `${releases} tr[data-version="${OLD}"] .badges`, /current\s*pinned/);
        await waitText(page, `${row} .pinned`, new RegExp(`^${re(OLD)}$`));

        await page.selectOption('#rollout-version', '0.6.4');
        await page.fill('#rollout-stages', '10, 50, 100');
        await page.fill('#rollout-max-failures', '100%'); // no halt: the devices' outcomes are not under test here
        await page.click('#rollout-start');
        const ro = '#rollout-list tbody tr:first-child';
        await waitText(page, `${ro} .status`, /^active$/);
        assert.equal(await page.locator(`${ro} .stage`).innerText(), '1 of 3: 10 %');
        await page.click(`${ro} .advance`);
        await waitText(page, `${ro} .stage`, /^2 of 3: 50 %$/);

        // A device checks in again; the rollout decides what it is offered,
        // and the rollout's count of devices offered follows live.
        const before = Number(await page.locator(`${ro} .offered`).innerText());
        for (const d of devices.slice(0, 2)) await checkIn(server.url, d);
        const api = await (await fetch(`${server.url}/api/rollouts`, {
          headers: { Authorization: `Bearer ${TOKEN}` }, signal: AbortSignal.timeout(5000),
        })).json();
        assert.equal(api.rollouts.length, 1);
        assert.equal(api.rollouts[0].stage, 1);
        assert.equal(api.rollouts[0].status, 'active');
        await waitText(page, `${ro} .offered`, new RegExp(`^${api.rollouts[0].offered}$`), 15000);
        assert.ok(api.rollouts[0].offered >= before);

        await page.click(`${ro} .pause`);
        await waitText(page, `${ro} .status`, /^paused$/);
        await page.click(`${ro} .resume`);
        await waitText(page, `${ro} .status`, /^active$/);

        // Serving: what devices are offered, the publish policy and the check-ins' say.
        const platformApi = async () => (await fetch(`${server.url}/api/platforms/${PLATFORM}`, {
          headers: { Authorization: `Bearer ${TOKEN}` }, signal: AbortSignal.timeout(5000),
        })).json();
        await waitText(page, '#serving-firmware', new RegExp(`offered firmware ${re(OLD)}: pinned \\(also to downgrade\\)`));
        await page.check('#publish-manual');
        await waitText(page, `${releases}`, /published by hand/);
        assert.equal((await platformApi()).publish, 'manual');
        assert.equal(await page.locator(`${releases} .unpin`).count(), 0); // unpinned, it would serve nothing
        await page.uncheck('#publish-manual');
        await waitText(page, `${releases} .unpin`, /Unpin/);
        assert.equal((await platformApi()).publish, 'auto');
        await page.uncheck('#checkins-settle');
        await page.waitForFunction(() => !document.querySelector('#checkins-settle').checked);
        assert.equal((await platformApi()).checkins_settle, false);
        await page.check('#checkins-settle');
        await page.waitForFunction(() => document.querySelector('#checkins-settle').checked);
        assert.equal((await platformApi()).checkins_settle, true);

        // The whitelist: on, with one MAC; the other devices are refused.
        await page.fill('#whitelist-mac', '24:0a:c4:00:00:01');
        await page.click('#whitelist button[type="submit"]');
        await waitText(page, '#whitelist ul.macs', /24:0A:C4:00:00:01/);
        await page.check('#whitelist-enabled');
        await page.waitForFunction(() => document.querySelector('#whitelist-enabled').checked);
        assert.equal((await checkIn(server.url, devices[2])).status, 403);
        assert.notEqual((await checkIn(server.url, devices[0])).status, 403);
        await page.uncheck('#whitelist-enabled');
        await page.waitForFunction(() => !document.querySelector('#whitelist-enabled').checked);
        assert.notEqual((await checkIn(server.url, devices[2])).status, 403);

        // The signing policy: a key added requires signed uploads; removed, it lifts.
        const digest = 'ab'.repeat(32);
        const policy = async () => (await fetch(`${server.url}/api/platforms/${PLATFORM}/signing`, {
          headers: { Authorization: `Bearer ${TOKEN}` }, signal: AbortSignal.timeout(5000),
        })).json();
        await page.fill('#signing-key', digest.toUpperCase());
        await page.click('#signing button[type="submit"]');
        await waitText(page, '#signing ul.keys', new RegExp(digest));
        await waitText(page, '#signing-state', /Required/);
        assert.deepEqual((await policy()).keys, [digest]);
        await page.click('#signing ul.keys button');
        await waitText(page, '#signing-state', /Not required/);
        assert.equal((await policy()).required, false);

        // A frontend image (the device's update page, a LittleFS image) for the platform.
        await page.selectOption('#upload-kind', 'frontend');
        await page.selectOption('#upload-platform', PLATFORM);
        await page.fill('#upload-label', 'page-1');
        await page.setInputFiles('#firmware-file', wwwBin);
        await page.click('#upload');
        await waitText(page, '#upload-result', /^Uploaded: esp32-csi-node frontend page-1, now current$/);
        await waitText(page, '#frontend-releases tr[data-version="page-1"] .badges', /current/);

        mkdirSync(artifacts, { recursive: true });
        await page.screenshot({ path: join(artifacts, 'admin-ui.png'), fullPage: true, timeout: 10000 });

        // A token that stops working under the page (here: replaced by a
        // wrong one) sends the operator back to sign in, with the reason.
        await page.evaluate(() => sessionStorage.setItem('aloft-admin-token', 'revoked-token-0000000000'));
        await waitText(page, '#login-message', /refused the token \(401\)/, 15000);
        passed = true;
      } finally {
        if (!passed && page) {
          mkdirSync(artifacts, { recursive: true });
          await page
            .screenshot({ path: join(artifacts, 'admin-ui-failed.png'), fullPage: true, timeout: 10000 })
            .catch(() => {});
        }
        await browser?.close().catch(() => {});
      }
    });
  });

// A check-in that takes no body: the device's free space is too small for
// any release, so aloftd answers 304 however old its version is.
function checkInSmall(url, { mac, version, ip }) {
  return raw(url, `/update?dev=${PLATFORM}&ver=${version}`, {
    localAddress: ip,
    headers: { 'User-Agent': 'ESP32-http-Update', 'x-ESP32-STA-MAC': mac, 'x-ESP32-free-space': '1000', 'x-ESP32-mode': 'sketch' },
  });
}

test('admin UI at fleet size, on a phone: 3,000 devices paged, sorted and filtered by the server, the charts, a device\'s history',
  { skip: noChromium, timeout: 180000 },
  async () => {
    for (const f of [FW_OLD, FW_NEW]) assert.ok(existsSync(f), `${f} not found (ALOFT_FIXTURES)`);
    // the rollout's history a point a second, so that it has several
    await withAloftd(['--rollout-step', '1'], async ({ dir, server }) => {
      const get = async (path) => {
        const r = await fetch(`${server.url}${path}`, { headers: { Authorization: `Bearer ${TOKEN}` }, signal: AbortSignal.timeout(10000) });
        assert.equal(r.status, 200, path);
        return r.json();
      };
      const post = async (path, body) => {
        const r = await fetch(`${server.url}${path}`, {
          method: 'POST', body: JSON.stringify(body), signal: AbortSignal.timeout(10000),
          headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' },
        });
        assert.equal(r.status < 300, true, `${path}: ${r.status} ${await r.text()}`);
      };
      for (const f of [FW_OLD, FW_NEW]) {
        const r = await fetch(`${server.url}/api/firmware`, {
          method: 'POST', body: readFileSync(f), signal: AbortSignal.timeout(20000),
          headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/octet-stream' },
        });
        assert.equal(r.status, 201);
      }
      // A rollout of the new release to half the devices, then all.
      await post(`/api/platforms/${PLATFORM}/rollouts`, { version: NEW, stages: [50, 100], max_failures: '100%' });

      // 3,000 devices on three versions from four addresses, 16 at a time.
      const N = 3000;
      const versions = [NEW, OLD, '0.5.0'];
      const hex2 = (n) => n.toString(16).padStart(2, '0').toUpperCase();
      const fleet = Array.from({ length: N }, (_, i) => ({
        mac: `24:0A:C4:10:${hex2(i >> 8)}:${hex2(i & 255)}`,
        version: versions[i % 3],
        ip: `127.0.0.${21 + (i % 4)}`,
      }));
      for (let i = 0; i < N; i += 16) {
        const rs = await Promise.all(fleet.slice(i, i + 16).map((d) => checkInSmall(server.url, d)));
        for (const r of rs) assert.equal(r.status, 304);
      }
      // 40 more that check in with room for the release: those in the
      // rollout's half are offered it; 30 of them come back on what they
      // were offered (after the check-ins were written: a device's
      // check-ins within 100 ms are one), 10 never do.
      const takers = Array.from({ length: 40 }, (_, i) => ({ mac: `24:0A:C4:20:00:${hex2(i)}`, version: '0.5.0', ip: '127.0.0.25' }));
      // (half of them, then the others in a later second: two steps)
      const offers = [];
      for (const d of takers) {
        if (offers.length === 20) {
          const next = Math.floor(Date.now() / 1000) + 1;
          while (Date.now() / 1000 < next) await new Promise((r) => setTimeout(r, 20));
        }
        const r = await checkIn(server.url, d);
        offers.push(r.status === 200 ? r.headers['x-aloft-version'] : null);
      }
      await get(`/api/devices?platform=${PLATFORM}&limit=1`);
      for (let i = 0; i < 30; i++) {
        if (offers[i]) assert.equal((await checkInSmall(server.url, { ...takers[i], version: offers[i] })).status, 304);
      }
      const offeredNew = offers.filter((v) => v === NEW).length;
      const updatedNew = offers.slice(0, 30).filter((v) => v === NEW).length;
      assert.ok(updatedNew > 0 && offeredNew < 40, `${offeredNew} offered, ${updatedNew} came back`);
      await get(`/api/devices?platform=${PLATFORM}&limit=1`);
      const ro = (await get('/api/rollouts')).rollouts[0];
      assert.equal(ro.by_stage[0].offered, offeredNew);
      assert.equal(ro.by_stage[0].updated, updatedNew);
      const total = N + takers.length;
      const byVersion = (await get(`/api/platforms/${PLATFORM}/versions`)).versions;
      assert.equal(byVersion.reduce((n, v) => n + v.devices, 0), total);

      let browser;
      let page;
      let passed = false;
      try {
        browser = await launchChromium(dir, { width: 390, height: 844 }); // a phone
        page = browser.pages()[0] ?? (await browser.newPage());
        page.setDefaultTimeout(20000);
        await page.goto(`${server.url}/admin/`, { timeout: 20000 });
        await page.fill('#token', TOKEN);
        await page.click('#sign-in');
        const fmt = (n) => n.toLocaleString('en');
        await waitText(page, '#device-total', new RegExp(`^${fmt(total)}$`));

        // The versions chart: one bar a version, the server's counts.
        for (const v of byVersion) {
          assert.equal(await page.locator(`#version-chart [data-version="${v.version}"] .count`).innerText(), fmt(v.devices));
        }
        // The rollout's chart: its stages' counters.
        const stage0 = `.rollout-chart[data-rollout="${ro.id}"] [data-stage="0"]`;
        await waitText(page, `${stage0} .offered`, new RegExp(`^${ro.by_stage[0].offered}$`));
        assert.equal(await page.locator(`${stage0} .bar-value .updated`).innerText(), String(ro.by_stage[0].updated));
        assert.equal(await page.locator(`.rollout-chart[data-rollout="${ro.id}"] .stage-row`).count(), 2);
        // Over time: a step for each second the counters changed in, and
        // the last one the rollout's counters.
        const timeline = await get(`/api/rollouts/${ro.id}/history`);
        const steps = new Set(timeline.points.map((p) => p.at)).size;
        assert.ok(steps >= 2, `${steps} steps`);
        const line = `.rollout-timeline[data-rollout="${ro.id}"]`;
        await waitText(page, `${line} .last-offered`, new RegExp(`^${ro.offered}$`));
        assert.equal(await page.locator(`${line} .last-updated`).innerText(), String(ro.successes));
        assert.equal(await page.locator(`${line} .last-failed`).innerText(), String(ro.failures));
        assert.equal(await page.locator(line).getAttribute('data-steps'), String(steps));
        assert.equal(await page.locator(`${line} path.offered`).count(), 1);

        // Pages of 50, in MAC order; the second is the server's second.
        assert.equal(await page.locator('#devices tbody tr').count(), 50);
        assert.equal(await page.locator('#page-range').innerText(), `1–50 of ${fmt(total)}`);
        await page.click('#page-next');
        await waitText(page, '#page-range', new RegExp(`^51–100 of ${fmt(total)}$`));
        const second = (await get(`/api/devices?platform=${PLATFORM}&limit=50&offset=50`)).devices;
        await waitText(page, '#devices tbody tr:first-child', new RegExp(re(second[0].mac)));
        assert.deepEqual(await page.locator('#devices tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.mac)),
          second.map((d) => d.mac));

        // Sorted by the server: by IP, then the other way.
        await page.click('#devices [data-sort="ip"]');
        await waitText(page, '#page-range', /^1–50 of /);
        const byIp = (await get(`/api/devices?platform=${PLATFORM}&limit=50&sort=ip`)).devices;
        await waitText(page, '#devices tbody tr:first-child', new RegExp(re(byIp[0].mac)));
        await page.click('#devices [data-sort="ip"]');
        const byIpDesc = (await get(`/api/devices?platform=${PLATFORM}&limit=50&sort=ip&order=desc`)).devices;
        await waitText(page, '#devices tbody tr:first-child', new RegExp(re(byIpDesc[0].mac)));
        assert.equal(byIpDesc[0].ip, '127.0.0.25');

        // Filtered by the server: a version (from its bar), an address, a state.
        await page.click(`#version-chart [data-version="${OLD}"]`);
        await waitText(page, '#device-total', new RegExp(`^${fmt(N / 3)}$`));
        for (const v of await page.locator('#devices tbody .version').allInnerTexts()) assert.equal(v, OLD);
        await page.fill('#filter-address', '127.0.0.22');
        await page.click('#filter-apply');
        await waitText(page, '#device-total', new RegExp(`^${fmt(N / 12)}$`));
        await page.selectOption('#filter-version', '');
        await page.fill('#filter-address', '');
        await page.selectOption('#filter-state', 'offered');
        const offered = (await get(`/api/devices?platform=${PLATFORM}&limit=1&state=offered`)).total;
        await waitText(page, '#device-total', new RegExp(`^${fmt(offered)}$`));
        await page.selectOption('#filter-state', '');
        await waitText(page, '#device-total', new RegExp(`^${fmt(total)}$`));

        // A device that took the offer: its page and its history.
        const taker = takers[offers.indexOf(NEW)];
        const hist = await get(`/api/devices/${taker.mac}`);
        assert.equal(hist.device.version, NEW);
        assert.deepEqual(hist.events.map((e) => e.kind), ['checkin', 'offer']);
        await page.selectOption('#filter-version', NEW);
        await page.fill('#filter-address', '127.0.0.25');
        await page.click('#filter-apply');
        await page.click(`#devices tr[data-mac="${taker.mac}"] .device-link`);
        await waitText(page, '#device-version', new RegExp(`^${re(NEW)}$`));
        await waitText(page, '#device-history tbody tr:first-child .kind', /^checkin$/);
        assert.deepEqual(await page.locator('#device-history tbody .kind').allInnerTexts(), ['checkin', 'offer']);
        assert.match(await page.locator('#device-history tbody tr:last-child .detail').innerText(), new RegExp(`^200 offered ${re(NEW)}`));

        // Nothing wider than the phone but what scrolls inside its box.
        assert.ok(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1),
          'the page scrolls sideways on a phone');
        await page.locator('#page-next').scrollIntoViewIfNeeded();
        assert.ok(await page.locator('#page-next').isVisible());
        mkdirSync(artifacts, { recursive: true });
        await page.screenshot({ path: join(artifacts, 'admin-ui-fleet-phone.png'), fullPage: true, timeout: 10000 });
        passed = true;
      } finally {
        if (!passed && page) {
          mkdirSync(artifacts, { recursive: true });
          await page
            .screenshot({ path: join(artifacts, 'admin-ui-fleet-failed.png'), fullPage: true, timeout: 10000 })
            .catch(() => {});
        }
        await browser?.close().catch(() => {});
      }
    });
  });
