#!/usr/bin/env node
// A real HTTPS server for the TLS and HTTP/2 tests: Node's http2 module (h2 by ALPN, HTTP/1.1 fallback)
// or, with --h1, its https module (HTTP/1.1 only). It binds 127.0.0.1 only.
//
//   node tls_server.js --cert FILE --key FILE [--h1] [--port P]
//   node tls_server.js --stall [--port P]
//
// --stall accepts TCP connections and never answers (a TLS handshake that stalls); only its connection
// counters move.
//
// Prints one line, {"port": P}, once it listens. Then reads commands on stdin, one per line, and answers
// each with one JSON line on stdout:
//   stats   the counters: tcp_connections, max_open (most connections open at once), tls_handshakes,
//           tls_resumed (sessions resumed), requests, requests_h2, requests_h1 (by negotiated protocol),
//           max_streams (most requests in flight at once on one connection), resets, goaways, killed
//           (paths of the requests a GOAWAY cut off, in order), hits ({path: requests})
//   reset   zeroes the counters and forgets per-key state; answers {"ok": true}
// It exits when stdin closes, so a test that dies takes its server with it.
//
// Routes (the path without its query is the key and the seed):
//   /img/<name>?size=N[&hold=1][&together=K]
//                                An image of N bytes (default 20000): see image_bytes(). hold=1 holds the
//                                response until a GOAWAY has been sent (at most 10 s), so it is in flight.
//                                together=K holds it until K requests are in flight on its connection at
//                                once (at most 10 s): only multiplexing can make K > 1 happen.
//   /gzip/<name>?size=N[&stored=1]
//                                The same image with Content-Encoding: gzip; stored=1 does not compress
//                                (level 0), so the encoded body is a little larger than the image.
//   /br/<name>?size=N            The same image with Content-Encoding: br.
//   /reset/<name>?fails=K        The first K (default 1) requests for this path are reset: RST_STREAM
//                                (INTERNAL_ERROR) over h2, the TCP connection over HTTP/1.1. Then the image.
//   /goaway/<name>?held=S&requests=R
//                                The first request for this path waits until its connection has carried R
//                                requests (default 1) and S (default 1) requests with hold=1 are in flight
//                                on it (at most 10 s), then the server sends GOAWAY (INTERNAL_ERROR) and
//                                drops the connection, cutting off every request on it not yet answered
//                                (listed in `killed`; the others' answers go out before the GOAWAY). Later
//                                requests for the path get the image. h2 only.
//   anything else                404.
'use strict';

const fs = require('fs');
const net = require('net');
const http2 = require('http2');
const https = require('https');
const readline = require('readline');
const zlib = require('zlib');

function parse_args(argv) {
  const args = {h1: false, stall: false, port: 0};
  for (let i = 2; i < argv.length; ++i) {
    const flag = argv[i];
    if (flag === '--h1') args.h1 = true;
    else if (flag === '--stall') args.stall = true;
    else if (flag === '--cert') args.cert = argv[++i];
    else if (flag === '--key') args.key = argv[++i];
    else if (flag === '--port') args.port = Number(argv[++i]);
    else throw new Error('unknown flag ' + flag);
  }
  if (!args.stall && (!args.cert || !args.key))
    throw new Error('usage: tls_server.js --cert FILE --key FILE [--h1] [--port P] | --stall [--port P]');
  return args;
}

// A whole 1x1 JPEG's structure (SOI, a frame header, a scan header) before its scan data.
const JPEG_HEAD = [0xff, 0xd8, 0xff, 0xc0, 0x00, 0x0b, 0x08, 0x00, 0x01, 0x00, 0x01, 0x01, 0x01, 0x11, 0x00,
                   0xff, 0xda, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x3f, 0x00];

// The image body for (path, size): a JPEG whose scan data is a pattern seeded by the path (never 0xFF,
// so the structure holds), then the end marker. Deterministic and compressible; tests rebuild it
// (tls_server.cpp, testlib.py) to check the files.
function image_bytes(path, size) {
  size = Math.max(size, JPEG_HEAD.length + 2);
  let seed = 0;
  for (const c of Buffer.from(path)) seed = (seed + c) % 251;
  const body = Buffer.alloc(size);
  Buffer.from(JPEG_HEAD).copy(body);
  for (let i = JPEG_HEAD.length; i < size - 2; ++i) body[i] = (i * 131 + seed) % 251;
  body[size - 2] = 0xff, body[size - 1] = 0xd9;
  return body;
}

let counters;
let keys;          // path -> requests seen, for /reset and /goaway
let goaway_sent;   // resolves held requests
let goaway_waiters;
function reset_counters() {
  counters = {
    tcp_connections: 0, max_open: 0, tls_handshakes: 0, tls_resumed: 0, requests: 0, requests_h2: 0, requests_h1: 0,
    max_streams: 0, resets: 0, goaways: 0, killed: [], hits: {},
  };
  keys = new Map();
  goaway_sent = false;
  wake_goaway_waiters();
}
function wake_goaway_waiters() {
  for (const wake of goaway_waiters || []) wake();
  goaway_waiters = [];
}
reset_counters();

// Requests in flight per connection (an h2 session, or an HTTP/1.1 socket): connection -> Set of
// {path, held, answered}; and requests each connection has carried.
const in_flight = new Map();
const carried = new WeakMap();
const stream_waiters = new Set();  // {connection, ready(active set), wake}

function connection_of(req) {
  return req.stream ? req.stream.session : req.socket;
}

// Re-checked whenever a request starts or ends on any connection.
function check_stream_waiters() {
  for (const w of stream_waiters) {
    if (w.ready(in_flight.get(w.connection) || new Set())) w.wake();
  }
}

function wait_until(connection, ready) {
  return with_timeout((wake) => {
    const waiter = {connection, ready, wake: () => { stream_waiters.delete(waiter); wake(); }};
    stream_waiters.add(waiter);
    check_stream_waiters();
  }, 10000);
}

function with_timeout(register, ms) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    register(() => { clearTimeout(timer); resolve(); });
  });
}

function send_image(req, res, path, size, encoding, gzip_level) {
  if (res.entry) res.entry.answered = true;
  let body = image_bytes(path, size);
  const headers = {'content-type': 'image/jpeg'};
  if (encoding === 'gzip') body = zlib.gzipSync(body, {level: gzip_level});
  if (encoding === 'br') body = zlib.brotliCompressSync(body);
  if (encoding) headers['content-encoding'] = encoding;
  headers['content-length'] = body.length;
  res.writeHead(200, headers);
  res.end(body);
}

async function handle(req, res) {
  const url = new URL(req.url, 'https://127.0.0.1');
  const path = url.pathname;
  const size = Number(url.searchParams.get('size') || 20000);
  const connection = connection_of(req);
  ++counters.requests;
  if (req.httpVersionMajor === 2) ++counters.requests_h2; else ++counters.requests_h1;
  counters.hits[path] = (counters.hits[path] || 0) + 1;
  const seen = (keys.get(path) || 0) + 1;
  keys.set(path, seen);

  let active = in_flight.get(connection);
  if (!active) in_flight.set(connection, active = new Set());
  const held = path.startsWith('/img/') && url.searchParams.get('hold') === '1';
  const entry = {path, held, answered: false};
  res.entry = entry;
  active.add(entry);
  carried.set(connection, (carried.get(connection) || 0) + 1);
  counters.max_streams = Math.max(counters.max_streams, active.size);
  res.on('close', () => {
    active.delete(entry);
    if (active.size === 0) in_flight.delete(connection);
    check_stream_waiters();
  });
  check_stream_waiters();

  if (path.startsWith('/img/')) {
    const together = Number(url.searchParams.get('together') || 0);
    if (together > 1) await wait_until(connection, (requests) => requests.size >= together);
    if (held && !goaway_sent) await with_timeout((wake) => goaway_waiters.push(wake), 10000);
    if (!res.destroyed) send_image(req, res, path, size, null);
  } else if (path.startsWith('/gzip/')) {
    send_image(req, res, path, size, 'gzip', url.searchParams.get('stored') === '1' ? 0 : 6);
  } else if (path.startsWith('/br/')) {
    send_image(req, res, path, size, 'br');
  } else if (path.startsWith('/reset/')) {
    if (seen <= Number(url.searchParams.get('fails') || 1)) {
      ++counters.resets;
      if (req.stream) req.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
      else req.socket.destroy();
      return;
    }
    send_image(req, res, path, size, null);
  } else if (path.startsWith('/goaway/') && req.stream) {
    if (seen > 1) return send_image(req, res, path, size, null);
    const wanted_held = Number(url.searchParams.get('held') || 1);
    const wanted_requests = Number(url.searchParams.get('requests') || 1);
    await wait_until(connection, (requests) => carried.get(connection) >= wanted_requests &&
                                                [...requests].filter((e) => e.held).length >= wanted_held);
    const session = req.stream.session;
    for (const e of in_flight.get(session) || []) {
      if (!e.answered) counters.killed.push(e.path);
    }
    ++counters.goaways;
    goaway_sent = true;
    session.goaway(http2.constants.NGHTTP2_INTERNAL_ERROR);
    // Let the GOAWAY frame out before the connection goes, and only then release the held requests, so
    // none of the cut-off ones slips out an answer in between.
    setTimeout(() => {
      session.destroy();
      wake_goaway_waiters();
    }, 50);
  } else {
    res.writeHead(404, {'content-type': 'text/plain'});
    res.end('not found\n');
  }
}

function make_server(args) {
  // Holds every connection and says nothing; reads (and drops) what comes, so a client's close is seen.
  if (args.stall) return net.createServer((socket) => socket.resume());
  const tls_options = {cert: fs.readFileSync(args.cert), key: fs.readFileSync(args.key)};
  const on_request = (req, res) => {
    handle(req, res).catch((e) => {
      process.stderr.write('tls_server: ' + e.stack + '\n');
      res.destroy();
    });
  };
  return args.h1 ? https.createServer(tls_options, on_request)
                 : http2.createSecureServer({...tls_options, allowHTTP1: true}, on_request);
}

function main() {
  const args = parse_args(process.argv);
  const server = make_server(args);
  let open = 0;
  server.on('connection', (socket) => {
    ++counters.tcp_connections;
    counters.max_open = Math.max(counters.max_open, ++open);
    socket.on('close', () => --open);
    socket.on('error', () => {});
  });
  server.on('secureConnection', (socket) => {
    ++counters.tls_handshakes;
    if (socket.isSessionReused()) ++counters.tls_resumed;
  });
  // A failed handshake (a client refusing the certificate) is what several tests provoke: not an error.
  server.on('tlsClientError', () => {});
  if (!args.h1 && !args.stall) {
    server.on('sessionError', () => {});
    // A stream cut off by a reset or GOAWAY reports an error nobody needs to hear about.
    server.on('stream', (stream) => stream.on('error', () => {}));
  }
  server.on('error', (e) => {
    process.stderr.write('tls_server: ' + e.message + '\n');
    process.exit(1);
  });
  server.listen(args.port, '127.0.0.1', () => {
    process.stdout.write(JSON.stringify({port: server.address().port}) + '\n');
  });

  const commands = readline.createInterface({input: process.stdin});
  commands.on('line', (line) => {
    const command = line.trim();
    if (command === 'stats') {
      process.stdout.write(JSON.stringify(counters) + '\n');
    } else if (command === 'reset') {
      reset_counters();
      process.stdout.write('{"ok": true}\n');
    } else {
      process.stdout.write(JSON.stringify({error: 'unknown command ' + command}) + '\n');
    }
  });
  commands.on('close', () => process.exit(0));
}

main();
