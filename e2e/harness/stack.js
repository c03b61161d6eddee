// The parts a browser test talks to, as real processes on loopback: the callhub
// server (SQLite in a temporary directory), the SMTP sink (aiosmtpd) and coturn.
// They run inside the test's own network namespace (see run.sh), so fixed ports
// are free and no packet leaves the machine.
import { spawn, spawnSync } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import { readFile } from 'node:fs/promises';
import { mkdtempSync, readdirSync, readFileSync, rmSync, existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export const PORTS = { http: 8080, smtp: 2525, turn: 3478, relayMin: 49160, relayMax: 49200, sfu: 50000 };
export const TURN_SECRET = 'e2e-turn-secret';
export const DOMAIN = 'ubimax';
export const PASSWORD = 'secret-e2e-1';

/** The callhub binary under test: $CALLHUB_BIN, else the debug build in $CARGO_TARGET_DIR. */
export function callhubBinary() {
  const bin = process.env.CALLHUB_BIN
    ?? join(process.env.CARGO_TARGET_DIR ?? join(REPO, 'target'), 'debug', 'callhub');
  if (!existsSync(bin)) throw new Error(`no callhub binary at ${bin}: build it (cargo build -p callhub-server) or set CALLHUB_BIN`);
  return bin;
}

/** Media tests are only honest on a namespace whose one interface is loopback (MEDIA.md). */
export function assertLoopbackOnly() {
  // /proc/net/dev is the reader's own namespace (sysfs may show the host's).
  const links = readFileSync('/proc/net/dev', 'utf8').split('\n').slice(2)
    .map((l) => l.split(':')[0].trim()).filter(Boolean);
  if (links.length !== 1 || links[0] !== 'lo') {
    throw new Error(`the browser tests must run in a network namespace with only loopback (found ${links.join(', ')}): use e2e/run.sh`);
  }
}

/**
 * E2E_WEB_FROM_DISK=1: the web client is served from web/public as it is now, not as
 * the binary embedded it when it was built (for working on the client without a
 * cargo build): callhub listens on PORTS.http + 1 behind a small proxy on PORTS.http
 * that answers /assets/* from disk and passes everything else (the WebSocket too) on.
 */
const webFromDisk = () => process.env.E2E_WEB_FROM_DISK === '1';

function startWebProxy(port, target) {
  const assets = join(REPO, 'web', 'public', 'assets');
  const types = { '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml' };
  const server = http.createServer(async (req, res) => {
    const path = new URL(req.url, 'http://x').pathname;
    if (req.method === 'GET' && path.startsWith('/assets/')) {
      const file = join(assets, decodeURIComponent(path.slice('/assets/'.length)));
      if (file.startsWith(assets)) {
        try {
          const body = await readFile(file);
          const ext = file.slice(file.lastIndexOf('.'));
          res.writeHead(200, { 'content-type': types[ext] ?? 'application/octet-stream', 'cache-control': 'no-store' }).end(body);
          return;
        } catch { /* not on disk: ask the server */ }
      }
    }
    const up = http.request({ host: '127.0.0.1', port: target, method: req.method, path: req.url, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.writeHead(502).end());
    req.pipe(up);
  });
  server.on('upgrade', (req, socket, head) => {
    const up = net.connect(target, '127.0.0.1', () => {
      const lines = [`${req.method} ${req.url} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      up.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (head?.length) up.write(head);
      up.pipe(socket);
      socket.pipe(up);
    });
    const close = () => { up.destroy(); socket.destroy(); };
    up.on('error', close);
    socket.on('error', close);
  });
  return new Promise((res) => server.listen(port, '127.0.0.1', () => res(server)));
}

function serverEnv(dataDir) {
  const base = `http://127.0.0.1:${PORTS.http}`;
  // An empty config file of the test's own: no stray callhub.toml is read.
  const config = join(dataDir, 'callhub.toml');
  writeFileSync(config, '');
  return {
    ...process.env,
    CALLHUB_CONFIG: config,
    CALLHUB_LISTEN: `127.0.0.1:${PORTS.http + (webFromDisk() ? 1 : 0)}`,
    CALLHUB_PUBLIC_URL: base,
    CALLHUB_DATA_DIR: dataDir,
    CALLHUB_DATABASE_URL: `sqlite://${join(dataDir, 'callhub.db')}`,
    CALLHUB_SMTP_URL: `smtp://127.0.0.1:${PORTS.smtp}`,
    CALLHUB_MAIL_FROM: 'callhub@callhub.test',
    CALLHUB_TURN_URLS: `turn:127.0.0.1:${PORTS.turn}?transport=udp`,
    CALLHUB_TURN_SECRET: TURN_SECRET,
    // The SFU's one UDP socket, on the namespace's loopback.
    CALLHUB_SFU_UDP: `127.0.0.1:${PORTS.sfu}`,
    // Every page of every test logs in from 127.0.0.1.
    CALLHUB_LOGIN_RATE_PER_IP: '10000',
    CALLHUB_LOG: process.env.CALLHUB_LOG ?? 'warn',
  };
}

function started(child, name, readyLine, ms = 20000) {
  return new Promise((res, rej) => {
    let seen = '';
    const timer = setTimeout(() => rej(new Error(`${name} not ready after ${ms} ms:\n${seen}`)), ms);
    const look = (chunk) => {
      seen += chunk;
      if (readyLine.test(seen)) { clearTimeout(timer); res(); }
    };
    child.stdout?.on('data', look);
    child.stderr?.on('data', look);
    child.on('exit', (code) => { clearTimeout(timer); rej(new Error(`${name} exited (${code}) before it was ready:\n${seen}`)); });
  });
}

async function httpReady(url, ms = 30000) {
  const until = Date.now() + ms;
  for (;;) {
    try {
      const r = await fetch(url);
      if (r.ok) return;
    } catch { /* not listening yet */ }
    if (Date.now() > until) throw new Error(`${url} did not answer 200 within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function forward(child, name) {
  const log = (chunk) => { if (process.env.E2E_LOG) process.stderr.write(`[${name}] ${chunk}`); };
  child.stdout?.on('data', log);
  child.stderr?.on('data', log);
}

/** Starts coturn, the SMTP sink and callhub; returns what tests need to know. */
export async function startStack() {
  assertLoopbackOnly();
  const dir = mkdtempSync(join(tmpdir(), 'callhub-e2e-'));
  const mailDir = join(dir, 'mail');
  const procs = [];

  const stopAll = async () => {
    for (const p of [...procs].reverse()) {
      if (p.exitCode === null && p.signalCode === null) {
        p.stopping = true;
        p.kill('SIGTERM');
        await new Promise((r) => { const t = setTimeout(() => { p.kill('SIGKILL'); r(); }, 5000); p.once('exit', () => { clearTimeout(t); r(); }); });
      }
    }
  };
  const env = serverEnv(dir);
  const baseURL = `http://127.0.0.1:${PORTS.http}`;
  let server;
  try {
    const turn = spawn('turnserver', [
      '-c', join(REPO, 'deploy/coturn/turnserver.conf'),
      // The test override: loopback only, and loopback peers allowed (never in production).
      '--listening-ip', '127.0.0.1', '--relay-ip', '127.0.0.1', '--allow-loopback-peers',
      '--listening-port', String(PORTS.turn),
      '--min-port', String(PORTS.relayMin), '--max-port', String(PORTS.relayMax),
      '--static-auth-secret', TURN_SECRET, '--realm', 'callhub.test',
      '--log-file', 'stdout', '--pidfile', join(dir, 'turnserver.pid'), '--no-tls', '--no-dtls',
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    procs.push(turn);
    await started(turn, 'coturn', /Relay ports initialization done/);
    forward(turn, 'coturn');

    const sink = spawn('python3', [join(REPO, 'crates/server/tests/support/smtp_sink.py'), String(PORTS.smtp), mailDir],
      { stdio: ['ignore', 'pipe', 'pipe'] });
    procs.push(sink);
    await started(sink, 'SMTP sink', /ready/);
    forward(sink, 'smtp');

    const bin = callhubBinary();
    const migrate = spawnSync(bin, ['migrate'], { env, encoding: 'utf8' });
    if (migrate.status !== 0) throw new Error(`callhub migrate failed: ${migrate.stderr}`);
    server = spawn(bin, ['serve'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    procs.push(server);
    forward(server, 'callhub');
    server.on('exit', (code, sig) => { if (!server.stopping) process.stderr.write(`callhub server exited (${code ?? sig})\n`); });
    if (webFromDisk()) {
      const proxy = await startWebProxy(PORTS.http, PORTS.http + 1);
      procs.push({ exitCode: null, signalCode: null, kill() { proxy.closeAllConnections?.(); proxy.close(() => this.emit?.('exit')); this.exitCode = 0; }, once(_e, fn) { fn(); } });
    }
    await httpReady(`${baseURL}/health`);
  } catch (e) {
    await stopAll();
    throw e;
  }

  return {
    dir, mailDir, baseURL, serverPid: server.pid, env,
    async stop() {
      await stopAll();
      if (!process.env.E2E_KEEP) rmSync(dir, { recursive: true, force: true });
    },
  };
}

let nextUser = 0;

/**
 * Creates an account with `callhub user add` (README) on the running server's
 * database; returns its UserInfo. Names get a per-process suffix so every test
 * has people of its own.
 */
export function addUser(stackEnv, { userId, displayName, email, role }) {
  const id = `${userId}-${process.pid}-${nextUser++}`;
  const args = ['user', 'add', '--domain', DOMAIN, '--user-id', id,
    '--display-name', displayName ?? id, '--email', email ?? `${id}@example.org`, '--password-stdin'];
  if (role) args.push('--role', role);
  const out = spawnSync(callhubBinary(), args, { env: stackEnv, input: `${PASSWORD}\n`, encoding: 'utf8' });
  if (out.status !== 0) throw new Error(`callhub user add ${id} failed: ${out.stderr}`);
  return { ...JSON.parse(out.stdout.trim().split('\n').pop()), password: PASSWORD };
}

/** Every mail the sink has accepted, as raw text, oldest first. */
export function mails(mailDir) {
  if (!existsSync(mailDir)) return [];
  return readdirSync(mailDir).filter((n) => n.endsWith('.eml'))
    .map((n) => readFileSync(join(mailDir, n), 'utf8'));
}

/** CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat. */
export function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14 and 15)
  const hz = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim() || 100);
  return ticks / hz;
}
