// Uploads one file to the server's tus endpoint with the real tus-js-client (its Node build),
// retrying quickly through broken connections. Driven by tests/api/tus_client.rs; usable by hand:
//
//   npm ci --prefix tests/tus
//   TUS_TOKEN=… node tests/tus/upload.mjs --endpoint http://127.0.0.1:8080/api/v1/uploads \
//       --file memo.wav [--chunk-size 8388608] [--url-storage /tmp/tus-urls.json]
//
// Every option may also come from the environment: TUS_ENDPOINT, TUS_TOKEN, TUS_FILE,
// TUS_CHUNK_SIZE, TUS_URL_STORAGE, TUS_FILENAME.
//
// On success it prints one JSON line on stdout and exits 0:
//   {"ok": true, "url": "<upload URL>", "retries": n, "errors": [...], "resumed_at": [...],
//    "requests": [...], "size": n}
// where `retries` counts the failed requests the client retried, `resumed_at` holds the
// Upload-Offset of the first PATCH after each retry, and `requests` is every request sent, as
// "METHOD offset" (or "METHOD") then the status or "-" when no response came.
// On failure it prints the error on stderr, the same JSON line with "ok": false, and exits 1
// (2 for bad arguments).

import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import * as tus from 'tus-js-client';

function fail(message) {
  process.stderr.write(`upload.mjs: ${message}\n`);
  process.exit(2);
}

let parsed;
try {
  parsed = parseArgs({
    options: {
      endpoint: { type: 'string' },
      token: { type: 'string' },
      file: { type: 'string' },
      'chunk-size': { type: 'string' },
      'url-storage': { type: 'string' },
      filename: { type: 'string' },
    },
    strict: true,
  }).values;
} catch (err) {
  fail(err.message);
}

const endpoint = parsed.endpoint ?? process.env.TUS_ENDPOINT;
const token = parsed.token ?? process.env.TUS_TOKEN;
const file = parsed.file ?? process.env.TUS_FILE;
const chunkSizeArg = parsed['chunk-size'] ?? process.env.TUS_CHUNK_SIZE;
const urlStoragePath = parsed['url-storage'] ?? process.env.TUS_URL_STORAGE;
if (!endpoint) fail('no endpoint: --endpoint URL or TUS_ENDPOINT');
if (!token) fail('no bearer token: --token T or TUS_TOKEN');
if (!file) fail('no file: --file PATH or TUS_FILE');
let chunkSize = Number.POSITIVE_INFINITY;
if (chunkSizeArg) {
  chunkSize = Number(chunkSizeArg);
  if (!Number.isSafeInteger(chunkSize) || chunkSize <= 0) fail(`bad chunk size: ${chunkSizeArg}`);
}
const filename = parsed.filename ?? process.env.TUS_FILENAME ?? path.basename(file);
const size = fs.statSync(file).size;

// Many quick retries: the test's proxy cuts a dozen connections in a row.
const retryDelays = Array.from({ length: 30 }, (_, i) => Math.min(200, 50 + 10 * i));

let retries = 0;
let afterRetry = false;
const errors = [];
const resumedAt = [];
const requests = [];
const pending = new Map();

function report(ok, extra) {
  const line = {
    ok,
    ...extra,
    retries,
    errors,
    resumed_at: resumedAt,
    requests: requests.map((r) => `${r.what} ${r.status}`),
    size,
  };
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

// The library's own rule (retry unless a 4xx other than 409 and 423), with a count.
function onShouldRetry(err, retryAttempt) {
  const status = err.originalResponse ? err.originalResponse.getStatus() : 0;
  const retry = !(status >= 400 && status < 500) || status === 409 || status === 423;
  errors.push(`${err.message.split('\n')[0]} (status ${status}, attempt ${retryAttempt})`);
  if (retry) {
    retries += 1;
    afterRetry = true;
  }
  return retry;
}

const options = {
  endpoint,
  chunkSize,
  retryDelays,
  headers: { Authorization: `Bearer ${token}` },
  metadata: { filename, filetype: 'audio/wav' },
  removeFingerprintOnSuccess: true,
  onShouldRetry,
  onBeforeRequest(req) {
    const method = req.getMethod();
    const offset = req.getHeader('Upload-Offset');
    const entry = { what: offset == null ? method : `${method} ${offset}`, status: '-' };
    requests.push(entry);
    pending.set(req, entry);
    if (afterRetry && method === 'PATCH') {
      resumedAt.push(Number(offset));
      afterRetry = false;
    }
  },
  onAfterResponse(req, res) {
    const entry = pending.get(req);
    if (entry) entry.status = String(res.getStatus());
    pending.delete(req);
  },
  // No process.exit: the library starts removing the fingerprint from the URL storage just before
  // onSuccess and does not wait for it; Node exits once it is written (idle keep-alive sockets
  // do not hold the process). An error there comes back through onError: exit status 1.
  onError(err) {
    process.stderr.write(`upload.mjs: upload failed: ${err}\n`);
    report(false, { error: String(err) });
    process.exitCode = 1;
  },
  onSuccess() {
    report(true, { url: upload.url });
  },
};
if (urlStoragePath) options.urlStorage = new tus.FileUrlStorage(urlStoragePath);

const upload = new tus.Upload(fs.createReadStream(file), options);

// Resume an upload of this same file that an earlier run left unfinished, as an app would.
upload
  .findPreviousUploads()
  .then((previous) => {
    if (previous.length > 0) upload.resumeFromPreviousUpload(previous[0]);
    upload.start();
  })
  .catch((err) => {
    process.stderr.write(`upload.mjs: reading the URL storage failed: ${err}\n`);
    report(false, { error: String(err) });
    process.exitCode = 1;
  });
