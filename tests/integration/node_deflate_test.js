'use strict';
// Integration tests: permessage-deflate (RFC 7692) between swirl's echo server and Node's ws 8.11 (Debian's node-ws)
// with `perMessageDeflate` and each of its window and context-takeover options.
//
// Usage:
//   NODE_PATH=/usr/share/nodejs /usr/bin/node node_deflate_test.js --echo-server PATH [NAME_SUBSTRING...]
//
// The echo server runs with `--deflate` (shared codecs), `--deflate=dedicated` and `--deflate=dedicated
// --deflate-window 9`, and without the flag. The last line printed is `N passed, N failed`; the exit status is
// non-zero if anything failed.

const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const WebSocket = require('ws');

const IO_TIMEOUT_MS = 10000;
const TEST_TIMEOUT_MS = 40000;
const FILE_TIMEOUT_MS = 170000;
const MIB = 1024 * 1024;
const SIZES = [0, 1, 1023, 1024, 5000, 65536, MIB];
const MODES = {
  shared: ['--deflate'],
  dedicated: ['--deflate=dedicated'],
  'dedicated-9': ['--deflate=dedicated', '--deflate-window', '9'],
};
// Each of ws's negotiation options, alone and combined (ws's defaults: context takeover both ways, 15-bit windows).
const CLIENT_OPTIONS = [
  {},
  { serverNoContextTakeover: true },
  { clientNoContextTakeover: true },
  { serverMaxWindowBits: 10 },
  { clientMaxWindowBits: 10 },
  { serverMaxWindowBits: 9, clientMaxWindowBits: 9, serverNoContextTakeover: true, clientNoContextTakeover: true },
  { threshold: 0 },
];

const args = { echoServer: null, filters: [] };
const servers = new Map();

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms / 1000}s waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Text that compresses about as well as prose. */
function textOfLength(n, seed = 0) {
  const words = ['swirl', 'deflate', 'window', 'takeover', 'context', 'message', 'frame', 'echo', 'zlib', String(seed)];
  const out = [];
  let size = 0;
  for (let i = seed; size < n; i++) {
    const w = words[(i * 7 + Math.floor(i / 3)) % words.length] + ' ';
    out.push(w);
    size += w.length;
  }
  return out.join('').slice(0, n);
}

/** Half random, half text: compresses, but not to nothing. */
function binaryOfLength(n) {
  return Buffer.concat([crypto.randomBytes(n >> 1), Buffer.from(textOfLength(n - (n >> 1)))]);
}

class ServerProcess {
  constructor(flags) {
    this.child = spawn(args.echoServer, ['--host', '127.0.0.1', '--port', '0', ...flags], { stdio: ['ignore', 'pipe', 'inherit'] });
    this.child.on('error', () => {});
    this.port = new Promise((resolve, reject) => {
      let output = '';
      const timer = setTimeout(() => reject(new Error(`echo_server ${flags.join(' ')} did not listen`)), IO_TIMEOUT_MS);
      this.child.once('exit', (code) => reject(new Error(`echo_server ${flags.join(' ')} exited (${code})`)));
      this.child.stdout.on('data', (chunk) => {
        output += chunk.toString();
        const match = /listening on ws:\/\/127\.0\.0\.1:(\d+)\r?\n/.exec(output);
        if (match) {
          clearTimeout(timer);
          resolve(Number(match[1]));
        }
      });
    });
  }

  isRunning() {
    return this.child.exitCode === null && this.child.signalCode === null;
  }
}

function serverPort(...flags) {
  const key = JSON.stringify(flags);
  if (!servers.has(key)) servers.set(key, new ServerProcess(flags));
  return servers.get(key).port;
}

process.on('exit', () => {
  for (const s of servers.values()) if (s.isRunning()) s.child.kill('SIGKILL');
});

const openClients = new Set();

/** Connects with `perMessageDeflate` (true, false or ws's options object); resolves once open. */
function connect(port, perMessageDeflate) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`, { perMessageDeflate, handshakeTimeout: IO_TIMEOUT_MS, maxPayload: 0 });
  openClients.add(ws);
  const client = { ws, inbox: [], waiters: [], extensions: '' };
  // ws.extensions names the extensions only; the parameters are in the response.
  ws.on('upgrade', (response) => { client.extensions = response.headers['sec-websocket-extensions'] || ''; });
  ws.on('message', (data, isBinary) => {
    const waiter = client.waiters.shift();
    if (waiter) waiter({ data, isBinary });
    else client.inbox.push({ data, isBinary });
  });
  client.closed = new Promise((resolve) => ws.on('close', (code) => resolve(code)));
  ws.on('error', (err) => { client.error = err; });
  client.next = () => withTimeout(client.inbox.length ? Promise.resolve(client.inbox.shift())
    : new Promise((resolve) => client.waiters.push(resolve)), IO_TIMEOUT_MS, 'a message');
  return withTimeout(new Promise((resolve, reject) => {
    ws.once('open', () => resolve(client));
    ws.once('error', reject);
  }), IO_TIMEOUT_MS, 'the handshake');
}

async function echo(client, message) {
  client.ws.send(message);
  const { data, isBinary } = await client.next();
  if (typeof message === 'string') {
    assert.equal(isBinary, false, 'expected text');
    const text = data.toString('utf8');
    assert.equal(text.length, message.length, 'echoed text has the wrong length');
    assert.ok(text === message, 'echoed text differs');
  } else {
    assert.equal(isBinary, true, 'expected binary');
    assert.equal(data.length, message.length, 'echoed binary has the wrong length');
    assert.ok(Buffer.compare(data, message) === 0, 'echoed binary differs');
  }
}

const tests = [];
function test(name, fn) {
  tests.push({ name, fn });
}

test('without --deflate the extension is declined and messages still flow', async () => {
  const client = await connect(await serverPort(), true);
  assert.equal(client.extensions, '');
  await echo(client, textOfLength(5000));
});

for (const [mode, flags] of Object.entries(MODES)) {
  for (const options of CLIENT_OPTIONS) {
    test(`${mode}: perMessageDeflate ${JSON.stringify(options)} negotiates, text and binary echo`, async () => {
      const client = await connect(await serverPort(...flags), options);
      const answer = client.extensions;
      assert.match(answer, /^permessage-deflate/, `the server declined: '${answer}'`);
      if (mode === 'shared') assert.match(answer, /server_no_context_takeover/);
      if (options.serverMaxWindowBits) assert.match(answer, new RegExp(`server_max_window_bits=${Math.min(options.serverMaxWindowBits, mode === 'dedicated-9' ? 9 : 15)}`));
      for (const size of SIZES) {
        await echo(client, textOfLength(size, size)).catch((err) => { err.message = `text ${size}: ${err.message}`; throw err; });
        await echo(client, binaryOfLength(size)).catch((err) => { err.message = `binary ${size}: ${err.message}`; throw err; });
      }
      // Many similar messages in a row: the contexts kept (or reset) on both sides stay in step.
      for (let i = 0; i < 50; i++) await echo(client, textOfLength(1500 + i, i % 3));
    });
  }
  test(`${mode}: 16 MiB text and binary messages`, async () => {
    const client = await connect(await serverPort(...flags), true);
    await echo(client, textOfLength(16 * MIB, 7));
    await echo(client, binaryOfLength(16 * MIB));
  });
}

test('a compressed message inflating past --max-message is closed with 1009', async () => {
  const client = await connect(await serverPort('--deflate', '--max-message', '100000'), true);
  await echo(client, textOfLength(100000)); // exactly the limit
  client.ws.send(textOfLength(100001));
  assert.equal(await withTimeout(client.closed, IO_TIMEOUT_MS, 'the close'), 1009);
});

function parseArgs(argv) {
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--echo-server') args.echoServer = argv[++i];
    else args.filters.push(argv[i]);
  }
  if (!args.echoServer) {
    console.error('usage: node node_deflate_test.js --echo-server PATH [NAME_SUBSTRING...]');
    process.exit(2);
  }
}

async function main() {
  parseArgs(process.argv.slice(2));
  const selected = tests.filter((t) => !args.filters.length || args.filters.some((f) => t.name.includes(f)));
  let passed = 0;
  let failed = 0;
  const watchdog = setTimeout(() => {
    console.error(`watchdog: test file exceeded ${FILE_TIMEOUT_MS / 1000}s`);
    console.log(`${passed} passed, ${failed + 1} failed`);
    process.exit(1);
  }, FILE_TIMEOUT_MS);
  watchdog.unref();
  for (const { name, fn } of selected) {
    try {
      await withTimeout(Promise.resolve().then(fn), TEST_TIMEOUT_MS, 'the test to finish');
      passed++;
      console.log(`ok - ${name}`);
    } catch (err) {
      failed++;
      console.log(`not ok - ${name}`);
      console.log(String(err && err.stack ? err.stack : err).replace(/^/gm, '    '));
    } finally {
      for (const ws of openClients) ws.terminate();
      openClients.clear();
    }
  }
  for (const [key, s] of servers) {
    if (!s.isRunning()) {
      failed++;
      console.log(`not ok - server ${key} exited before the end of the tests`);
    }
    s.child.kill('SIGTERM');
  }
  clearTimeout(watchdog);
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed === 0 && passed > 0 ? 0 : 1);
}

main().catch((err) => {
  console.error(err);
  console.log('0 passed, 1 failed');
  process.exit(1);
});
