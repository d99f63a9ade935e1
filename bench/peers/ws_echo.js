// ws_echo.js: Node's `ws` (Debian's node-ws) as JavaScript users run it: no compression (unless --deflate 1), 64 MiB
// messages.
// --broadcast 1: a text message "publish <payload>" is sent to every client (wss.clients, one send each).
// --pubsub 1: rooms as `ws` users write them (a Map from topic to a Set of sockets, each socket's topics kept for
// 'close'): "subscribe <topic>" joins and is answered "subscribed <topic>"; "publish <topic> <payload>" sends
// <payload> to the topic's sockets, one send each.
// --deflate 1: permessage-deflate on (`perMessageDeflate`) with zlib level --deflate-level (6), memLevel
// --deflate-mem-level (8), server window --deflate-window (15) and threshold --deflate-threshold (0: every message
// compressed); bench/run passes all four. Context takeover as the client offers it (ws honours
// server_no_context_takeover / client_no_context_takeover in the offer). ws runs zlib on libuv's thread pool, whose
// CPU time counts as the server's (the whole process is measured).
//   NODE_PATH=/usr/share/nodejs node ws_echo.js [--host 127.0.0.1] [--port 0] [--broadcast 1] [--pubsub 1]
//     [--deflate 1 [--deflate-window 15] [--deflate-level 6] [--deflate-mem-level 8] [--deflate-threshold 0]]
'use strict';
const { WebSocketServer } = require('ws');

const args = {};
for (let i = 2; i + 1 < process.argv.length; i += 2) args[process.argv[i]] = process.argv[i + 1];
const host = args['--host'] || '127.0.0.1';
const broadcast = args['--broadcast'] === '1';
const pubsub = args['--pubsub'] === '1';
const flag = (name, fallback) => (args[name] === undefined ? fallback : Number(args[name]));
const deflate = args['--deflate'] === '1' && {
  threshold: flag('--deflate-threshold', 0),
  zlibDeflateOptions: { level: flag('--deflate-level', 6), memLevel: flag('--deflate-mem-level', 8) },
  serverMaxWindowBits: flag('--deflate-window', 15),
};

const wss = new WebSocketServer({
  host,
  port: Number(args['--port'] || 0),
  backlog: 4096,
  perMessageDeflate: deflate,
  maxPayload: 64 * 1024 * 1024,
  clientTracking: broadcast,
});
const prefix = Buffer.from('publish ');
const subscribe = Buffer.from('subscribe ');
const startsWith = (data, head) => data.length >= head.length && data.subarray(0, head.length).equals(head);
const topics = new Map();  // topic -> Set of sockets

function onPubsub(ws, data) {
  if (startsWith(data, subscribe)) {
    const topic = data.toString('utf8', subscribe.length);
    let room = topics.get(topic);
    if (!room) topics.set(topic, (room = new Set()));
    room.add(ws);
    ws.topics.add(topic);
    ws.send(`subscribed ${topic}`);
    return true;
  }
  const space = data.indexOf(0x20, prefix.length);
  if (!startsWith(data, prefix) || space < 0) return false;
  const room = topics.get(data.toString('utf8', prefix.length, space));
  if (room) {
    const body = data.subarray(space + 1);
    for (const client of room) client.send(body, { binary: false });
  }
  return true;
}

wss.on('connection', (ws) => {
  if (pubsub) {
    ws.topics = new Set();
    ws.on('close', () => {
      for (const topic of ws.topics) {
        const room = topics.get(topic);
        room.delete(ws);
        if (room.size === 0) topics.delete(topic);
      }
    });
  }
  ws.on('message', (data, isBinary) => {
    if (pubsub && !isBinary && onPubsub(ws, data)) return;
    if (broadcast && !isBinary && startsWith(data, prefix)) {
      const body = data.subarray(prefix.length);
      for (const client of wss.clients) client.send(body, { binary: false });
      return;
    }
    ws.send(data, { binary: isBinary });
  });
  ws.on('error', () => {});
});
wss.on('listening', () => console.log(`listening on ws://${host}:${wss.address().port}`));
