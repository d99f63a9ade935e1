// ws_echo.js: Node's `ws` (Debian's node-ws) as JavaScript users run it: no compression, 64 MiB messages.
// --broadcast 1: a text message "publish <payload>" is sent to every client (wss.clients, one send each).
//   NODE_PATH=/usr/share/nodejs node ws_echo.js [--host 127.0.0.1] [--port 0] [--broadcast 1]
'use strict';
const { WebSocketServer } = require('ws');

const args = {};
for (let i = 2; i + 1 < process.argv.length; i += 2) args[process.argv[i]] = process.argv[i + 1];
const host = args['--host'] || '127.0.0.1';
const broadcast = args['--broadcast'] === '1';

const wss = new WebSocketServer({
  host,
  port: Number(args['--port'] || 0),
  backlog: 4096,
  perMessageDeflate: false,
  maxPayload: 64 * 1024 * 1024,
  clientTracking: broadcast,
});
const prefix = Buffer.from('publish ');
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {
    if (broadcast && !isBinary && data.length >= prefix.length && data.subarray(0, prefix.length).equals(prefix)) {
      const body = data.subarray(prefix.length);
      for (const client of wss.clients) client.send(body, { binary: false });
      return;
    }
    ws.send(data, { binary: isBinary });
  });
  ws.on('error', () => {});
});
wss.on('listening', () => console.log(`listening on ws://${host}:${wss.address().port}`));
