// Talks to the device API of PROTOCOLS.md §1–§2 on the page's own origin.

function authHeaders(psk) {
  return psk ? { Authorization: `Bearer ${psk}` } : {};
}

// The device's error bodies are {"status":"error","error":code,"message":text};
// anything else (a proxy, an older firmware) is shown as its text.
function parseBody(text) {
  try {
    return JSON.parse(text);
  } catch {
    return { message: text.trim() };
  }
}

export async function getJSON(path, psk, timeoutMs = 3000) {
  const res = await fetch(path, {
    headers: authHeaders(psk),
    cache: 'no-store',
    signal: AbortSignal.timeout(timeoutMs),
  });
  const body = parseBody(await res.text());
  if (!res.ok) {
    const err = new Error(body.message || `HTTP ${res.status}`);
    err.status = res.status;
    throw err;
  }
  return body;
}

// POSTs `file` (or an empty body) raw, as the device wants it. Resolves to
//   {outcome:'ok', body}            the device accepted it (200, status ok)
//   {outcome:'error', status, body} the device refused it
//   {outcome:'maybe'}               the whole body was sent, then the connection
//                                   dropped: the device may be restarting
//   {outcome:'failed', reason}      the body never got through
// XMLHttpRequest rather than fetch: only it reports upload progress.
export function post(path, file, psk, onProgress) {
  return new Promise((resolve) => {
    const xhr = new XMLHttpRequest();
    let sent = false;
    xhr.open('POST', path);
    for (const [k, v] of Object.entries(authHeaders(psk))) xhr.setRequestHeader(k, v);
    // the one content type each endpoint takes: never a type a page of
    // another site could send without a preflight
    xhr.setRequestHeader('Content-Type', file ? 'application/octet-stream' : 'application/json');
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) onProgress?.(e.loaded, e.total);
    };
    xhr.upload.onload = () => {
      sent = true;
      if (file) onProgress?.(file.size, file.size);
    };
    xhr.onload = () => {
      const body = parseBody(xhr.responseText);
      if (xhr.status === 200 && body.status !== 'error') resolve({ outcome: 'ok', body });
      else resolve({ outcome: 'error', status: xhr.status, body });
    };
    const lost = (reason) => () =>
      resolve(sent ? { outcome: 'maybe' } : { outcome: 'failed', reason });
    xhr.onerror = lost('the connection to the device failed');
    xhr.ontimeout = lost('the device stopped answering');
    xhr.onabort = lost('the upload was aborted');
    xhr.timeout = 10 * 60 * 1000;
    xhr.send(file ?? null);
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// After an accepted update the device replies, then restarts about a second
// later. It is back once /ota/status answers from a new boot: the boot count
// moved, the uptime went backwards, or it was seen down in between.
export async function waitForRestart(before, psk, { timeoutMs = 60000, intervalMs = 1000 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let sawDown = false;
  while (Date.now() < deadline) {
    await sleep(intervalMs);
    try {
      const s = await getJSON('/ota/status', psk, 2000);
      const rebooted =
        sawDown ||
        (s.boot_count !== undefined && s.boot_count !== before.boot_count) ||
        (s.uptime_s !== undefined && s.uptime_s < before.uptime_s);
      if (rebooted) return s;
    } catch {
      sawDown = true;
    }
  }
  return null;
}
