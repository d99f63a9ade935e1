'use strict';
// Integration tests: swirl's example servers driven by a real Node client (Debian's node-ws 8.11).
//
// Usage:
//   NODE_PATH=/usr/share/nodejs /usr/bin/node node_client_test.js \
//       --echo-server PATH --auth-server PATH [--openssl PATH] [NAME_SUBSTRING...]
//
// With --openssl, the wss tests run too: a throwaway CA and a server certificate for localhost are made at start
// with that program, and the servers get a TLS listener (`listening on wss://127.0.0.1:PORT`).
//
// Each server is started with `--host 127.0.0.1 --port 0`; the real port is read from its
// `listening on ws://127.0.0.1:PORT` line. The last line printed is `N passed, N failed`;
// the exit status is non-zero if anything failed.

const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const crypto = require('node:crypto');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const WebSocket = require('ws');

const IO_TIMEOUT_MS = 5000; // any single network wait (servers are local)
const TEST_TIMEOUT_MS = 20000; // one whole test
const FILE_TIMEOUT_MS = 55000; // the whole file (watchdog)
const SIZES = [0, 1, 125, 126, 65535, 65536, 1024 * 1024];
const SUBPROTOCOL_FLAGS = ['--subprotocol', 'chat', '--subprotocol', 'superchat'];

// ---------------------------------------------------------------------------
// Generic helpers
// ---------------------------------------------------------------------------

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms / 1000}s waiting for ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function delay(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function textOfLength(n) {
  const pattern = 'swirl echoes text 0123456789 abcdefghijklmnopqrstuvwxyz! ';
  return pattern.repeat(Math.ceil(n / pattern.length)).slice(0, n);
}

/** A FIFO of events with timed waits, filled by listeners attached at creation time. */
class Inbox {
  constructor(what) {
    this.what = what;
    this.items = [];
    this.waiters = [];
  }

  push(item) {
    const waiter = this.waiters.shift();
    if (waiter) waiter(item);
    else this.items.push(item);
  }

  next(ms = IO_TIMEOUT_MS) {
    if (this.items.length) return Promise.resolve(this.items.shift());
    let waiter;
    const arrived = new Promise((resolve) => {
      waiter = resolve;
      this.waiters.push(waiter);
    });
    return withTimeout(arrived, ms, this.what).catch((err) => {
      this.waiters = this.waiters.filter((w) => w !== waiter);
      throw err;
    });
  }
}

// ---------------------------------------------------------------------------
// Server processes
// ---------------------------------------------------------------------------

const args = { echoServer: null, authServer: null, openssl: null, filters: [] };
let certs = null; // the wss tests' certificates (makeCertificates), when --openssl was given
const servers = new Map(); // key -> ServerProcess, shared by all tests
const startFailures = new Map(); // key -> Error, so a broken server fails fast after the first try

class ServerProcess {
  constructor(executable, flags) {
    this.command = [executable, '--host', '127.0.0.1', '--port', '0', ...flags];
    // stderr is inherited so server diagnostics end up in the test log.
    this.child = spawn(executable, this.command.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
    this.exited = new Promise((resolve) => {
      this.child.once('exit', (code, signal) => resolve({ code, signal }));
    });
    this.child.on('error', () => {}); // e.g. ENOENT; surfaced by waitUntilListening()
  }

  isRunning() {
    return this.child.exitCode === null && this.child.signalCode === null && this.child.pid !== undefined;
  }

  waitUntilListening() {
    return new Promise((resolve, reject) => {
      let output = '';
      const finish = (err, port) => {
        clearTimeout(timer);
        this.child.removeListener('exit', onExit);
        this.child.removeListener('error', onError);
        if (err) {
          this.kill();
          reject(err);
        } else {
          resolve(port);
        }
      };
      const onExit = (code, signal) =>
        finish(new Error(`${this.command.join(' ')} exited (${code ?? signal}) before listening; stdout: ${JSON.stringify(output)}`));
      const onError = (err) => finish(new Error(`cannot start ${this.command[0]}: ${err.message}`));
      const timer = setTimeout(() => finish(new Error(
        `${this.command.join(' ')} did not print 'listening on ws://127.0.0.1:PORT' within ${IO_TIMEOUT_MS / 1000}s; ` +
        `stdout: ${JSON.stringify(output)}`)), IO_TIMEOUT_MS);
      this.child.once('exit', onExit);
      this.child.once('error', onError);
      // Keep consuming stdout after the port is known so the server never blocks on a full pipe.
      const wantsTls = this.command.includes('--tls-cert');
      this.child.stdout.on('data', (chunk) => {
        if (this.port !== undefined) return;
        output += chunk.toString();
        const match = /listening on ws:\/\/127\.0\.0\.1:(\d+)\r?\n/.exec(output);
        const tlsMatch = /listening on wss:\/\/127\.0\.0\.1:(\d+)\r?\n/.exec(output);
        if (match && (tlsMatch || !wantsTls)) {
          this.tlsPort = tlsMatch ? Number(tlsMatch[1]) : undefined;
          this.port = Number(match[1]);
          finish(null, this.port);
        }
      });
    });
  }

  /** SIGTERM (by default), wait up to 5 s, then SIGKILL. Resolves with { code, signal }. */
  async stop(signal = 'SIGTERM') {
    if (this.child.pid === undefined) return { code: null, signal: null }; // never started
    if (this.isRunning()) this.child.kill(signal);
    const result = await Promise.race([this.exited, delay(5000).then(() => null)]);
    if (result) return result;
    this.kill();
    return this.exited;
  }

  kill() {
    if (this.isRunning()) this.child.kill('SIGKILL');
  }
}

/** Port of a running `kind` ('echo' or 'auth') server with `flags`, started on first use. */
async function serverPort(kind, ...flags) {
  const key = JSON.stringify([kind, flags]);
  if (startFailures.has(key)) throw new Error(`failed to start earlier: ${startFailures.get(key).message}`);
  let server = servers.get(key);
  if (server && !server.isRunning()) {
    servers.delete(key);
    throw new Error(`${kind} server ${flags.join(' ')} died during an earlier test (exit ${server.child.exitCode ?? server.child.signalCode})`);
  }
  if (!server) {
    server = new ServerProcess(kind === 'echo' ? args.echoServer : args.authServer, flags);
    servers.set(key, server);
    try {
      await server.waitUntilListening();
    } catch (err) {
      servers.delete(key);
      startFailures.set(key, err);
      throw err;
    }
  }
  return server.port;
}

/** The wss port of a running `kind` server with a TLS listener (made from the test certificates) and `flags`. */
async function serverTlsPort(kind, ...flags) {
  const tlsFlags = ['--tls-cert', certs.server, '--tls-key', certs.serverKey, '--tls-port', '0', ...flags];
  await serverPort(kind, ...tlsFlags);
  return servers.get(JSON.stringify([kind, tlsFlags])).tlsPort;
}

/** A CA and a server certificate for localhost and 127.0.0.1, made by `openssl` in a temporary directory. */
function makeCertificates(openssl) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'swirl-node-tls-'));
  const file = (name) => path.join(dir, name);
  const run = (...argv) => execFileSync(openssl, argv, { stdio: 'ignore', timeout: 30000 });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  run('req', '-x509', ...ec, '-days', '2', '-subj', '/CN=swirl node test CA', '-keyout', file('ca.key'), '-out', file('ca.pem'));
  run('req', ...ec, '-subj', '/CN=localhost', '-keyout', file('server.key'), '-out', file('server.csr'));
  fs.writeFileSync(file('server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  run('x509', '-req', '-in', file('server.csr'), '-CA', file('ca.pem'), '-CAkey', file('ca.key'), '-CAcreateserial',
    '-days', '2', '-extfile', file('server.ext'), '-out', file('server.pem'));
  return { dir, ca: fs.readFileSync(file('ca.pem')), server: file('server.pem'), serverKey: file('server.key') };
}

/** Stops every server; returns descriptions of those that had died before being stopped. */
async function stopAllServers() {
  const died = [];
  for (const [key, server] of servers) {
    if (!server.isRunning()) died.push(`${key} (exit ${server.child.exitCode ?? server.child.signalCode})`);
    await server.stop();
  }
  servers.clear();
  return died;
}

process.on('exit', () => {
  for (const server of servers.values()) server.kill();
});

// ---------------------------------------------------------------------------
// Client helpers
// ---------------------------------------------------------------------------

const openClients = new Set(); // terminated after every test so nothing leaks into the next one

/**
 * Connects with node-ws. Resolves with { ws, messages, pongs, closed } once open; rejects on
 * any handshake failure (err.statusCode is set for a non-101 HTTP response).
 */
function connect(port, { path = '/', protocols = [], tls = false, ...options } = {}) {
  // Over wss the client trusts only the test CA (unless `ca` is given) and checks the name localhost.
  const url = tls ? `wss://localhost:${port}${path}` : `ws://127.0.0.1:${port}${path}`;
  const tlsOptions = tls ? { ca: certs.ca } : {};
  const ws = new WebSocket(url, protocols, { handshakeTimeout: IO_TIMEOUT_MS, ...tlsOptions, ...options });
  openClients.add(ws);
  const client = {
    ws,
    messages: new Inbox('a message'),
    pongs: new Inbox('a pong'),
    closed: new Promise((resolve) => {
      ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
    }),
  };
  ws.on('message', (data, isBinary) => client.messages.push({ data, isBinary }));
  ws.on('pong', (data) => client.pongs.push(data));
  ws.on('error', (err) => { client.error = err; });

  const opened = new Promise((resolve, reject) => {
    ws.once('open', () => resolve(client));
    ws.once('unexpected-response', (request, response) => {
      const err = new Error(`Unexpected server response: ${response.statusCode}`);
      err.statusCode = response.statusCode;
      response.resume();
      request.destroy();
      reject(err);
    });
    ws.once('error', reject);
    ws.once('close', (code) => reject(new Error(`connection closed (${code}) before opening`)));
  });
  return withTimeout(opened, IO_TIMEOUT_MS, 'the WebSocket handshake');
}

function closeCode(client) {
  return withTimeout(client.closed, IO_TIMEOUT_MS, 'the connection to close').then(({ code }) => code);
}

async function expectText(client, expected) {
  const { data, isBinary } = await client.messages.next();
  assert.equal(isBinary, false, 'expected a text message, got binary');
  const text = data.toString('utf8');
  assert.equal(text.length, expected.length, 'echoed text has the wrong length');
  assert.ok(text === expected, 'echoed text differs from what was sent'); // no megabyte diffs
}

async function expectBinary(client, expected) {
  const { data, isBinary } = await client.messages.next();
  assert.equal(isBinary, true, 'expected a binary message, got text');
  assert.equal(data.length, expected.length, 'echoed binary has the wrong length');
  assert.ok(Buffer.compare(data, expected) === 0, 'echoed binary differs from what was sent');
}

async function expectRejectedWith(status, port, path, options = {}) {
  await assert.rejects(connect(port, { path, ...options }), (err) => {
    assert.match(err.message, new RegExp(`\\b${status}\\b`));
    return true;
  });
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

const tests = [];
function test(name, fn) {
  tests.push({ name, fn });
}

test('text messages of every length class are echoed as text', async () => {
  const client = await connect(await serverPort('echo'));
  for (const size of SIZES) {
    const message = textOfLength(size);
    client.ws.send(message);
    await expectText(client, message).catch((err) => { err.message = `size ${size}: ${err.message}`; throw err; });
  }
});

test('binary messages of every length class are echoed as binary', async () => {
  const client = await connect(await serverPort('echo'));
  for (const size of SIZES) {
    const message = crypto.randomBytes(size);
    client.ws.send(message);
    await expectBinary(client, message).catch((err) => { err.message = `size ${size}: ${err.message}`; throw err; });
  }
});

test('multibyte UTF-8 text is echoed unchanged', async () => {
  const client = await connect(await serverPort('echo'));
  const message = 'κόσμε – héllo wörld ✓ 🎉 '.repeat(500);
  client.ws.send(message);
  await expectText(client, message);
});

test('fragmented text message sent with fin:false is echoed as one message', async () => {
  const client = await connect(await serverPort('echo'));
  client.ws.send('swirl ', { fin: false });
  client.ws.send('reassembles ', { fin: false });
  client.ws.send('fragments', { fin: true });
  await expectText(client, 'swirl reassembles fragments');
});

test('fragmented binary message sent with fin:false is echoed as one message', async () => {
  const client = await connect(await serverPort('echo'));
  const parts = [crypto.randomBytes(1000), crypto.randomBytes(70000), Buffer.from([0, 255])];
  parts.forEach((part, i) => client.ws.send(part, { binary: true, fin: i === parts.length - 1 }));
  await expectBinary(client, Buffer.concat(parts));
});

test('ping with payload is answered by pong with the same payload', async () => {
  const client = await connect(await serverPort('echo'));
  const payload = Buffer.from('\x00swirl-ping\xff', 'latin1');
  client.ws.ping(payload);
  const pong = await client.pongs.next();
  assert.deepEqual(pong, payload);
});

test('client close with code 4001 is echoed by the server', async () => {
  const client = await connect(await serverPort('echo'));
  client.ws.send('about to leave');
  await expectText(client, 'about to leave');
  client.ws.close(4001, 'bye');
  assert.equal(await closeCode(client), 4001);
});

test('message larger than --max-message is closed with 1009', async () => {
  const client = await connect(await serverPort('echo', '--max-message', '1024'));
  client.ws.send(crypto.randomBytes(2048));
  assert.equal(await closeCode(client), 1009);
});

test('server selects the offered subprotocol', async () => {
  const client = await connect(await serverPort('echo', ...SUBPROTOCOL_FLAGS), { protocols: ['superchat'] });
  assert.equal(client.ws.protocol, 'superchat');
});

test('server selects no subprotocol when the client offers none', async () => {
  const client = await connect(await serverPort('echo', ...SUBPROTOCOL_FLAGS));
  assert.equal(client.ws.protocol, '');
  client.ws.send('plain');
  await expectText(client, 'plain');
});

test('auth server rejects a missing token with 401', async () => {
  await expectRejectedWith(401, await serverPort('auth'), '/');
});

test('auth server rejects a wrong token with 401', async () => {
  await expectRejectedWith(401, await serverPort('auth'), '/?token=wrong');
});

test('auth server greets with "hello, welcome" then echoes', async () => {
  const client = await connect(await serverPort('auth'), { path: '/?token=secret' });
  await expectText(client, 'hello, welcome');
  client.ws.send('echo me');
  await expectText(client, 'echo me');
  const bytes = crypto.randomBytes(300);
  client.ws.send(bytes);
  await expectBinary(client, bytes);
});

function tlsTest(name, fn) {
  tests.push({ name: `wss: ${name}`, fn, tls: true });
}

tlsTest('text and binary messages of every length class are echoed, trusting the test CA', async () => {
  const client = await connect(await serverTlsPort('echo'), { tls: true });
  for (const size of [...SIZES, 16 * 1024 * 1024]) {
    const text = textOfLength(size);
    client.ws.send(text);
    await expectText(client, text);
    const bytes = crypto.randomBytes(size);
    client.ws.send(bytes);
    await expectBinary(client, bytes);
  }
});

tlsTest('fragments, ping/pong and a close with code 4001', async () => {
  const client = await connect(await serverTlsPort('echo'), { tls: true });
  client.ws.send('frag', { fin: false });
  client.ws.send('mented', { fin: true });
  await expectText(client, 'fragmented');
  client.ws.ping('over tls');
  assert.equal((await client.pongs.next()).toString(), 'over tls');
  client.ws.close(4001, 'bye');
  assert.equal(await closeCode(client), 4001);
});

tlsTest('the auth server greets with the TLS version and the SNI it saw', async () => {
  const client = await connect(await serverTlsPort('auth'), { tls: true, path: '/?token=secret' });
  const { data } = await client.messages.next();
  assert.match(data.toString(), /^hello, welcome \(TLSv1\.[23], SNI 'localhost', client ''\)$/);
  await expectRejectedWith(401, await serverTlsPort('auth'), '/?token=wrong', { tls: true });
});

tlsTest('a client that does not trust the server certificate is refused', async () => {
  await assert.rejects(connect(await serverTlsPort('echo'), { tls: true, ca: undefined }), /certificate/);
});

// ---------------------------------------------------------------------------
// Runner
// ---------------------------------------------------------------------------

function parseArgs(argv) {
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--echo-server') args.echoServer = argv[++i];
    else if (argv[i] === '--auth-server') args.authServer = argv[++i];
    else if (argv[i] === '--openssl') args.openssl = argv[++i];
    else args.filters.push(argv[i]);
  }
  if (!args.echoServer || !args.authServer) {
    console.error('usage: node node_client_test.js --echo-server PATH --auth-server PATH [--openssl PATH] [NAME_SUBSTRING...]');
    process.exit(2);
  }
}

async function main() {
  parseArgs(process.argv.slice(2));
  if (args.openssl) certs = makeCertificates(args.openssl);
  const selected = tests.filter((t) => (!t.tls || certs) && (!args.filters.length || args.filters.some((f) => t.name.includes(f))));
  let passed = 0;
  let failed = 0;

  const watchdog = setTimeout(() => {
    console.error(`watchdog: test file exceeded ${FILE_TIMEOUT_MS / 1000}s, killing servers`);
    console.log(`${passed} passed, ${failed + 1} failed`);
    process.exit(1); // the 'exit' handler kills the servers
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

  const died = await stopAllServers();
  if (certs) fs.rmSync(certs.dir, { recursive: true, force: true });
  for (const description of died) {
    failed++;
    console.log(`not ok - server ${description} exited before the end of the tests`);
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
