// The classic relay of server.js, scaled out as socket.io's documentation shows: one node of a
// cluster whose nodes share rooms through @socket.io/redis-adapter (node-redis clients). A
// message to `target` on another node reaches it through Redis.
//   node cluster.js PORT REDIS_URL
import { createServer } from "node:http";
import { createAdapter } from "@socket.io/redis-adapter";
import { createClient } from "redis";
import { Server } from "socket.io";

const port = Number(process.argv[2] ?? process.env.PORT ?? 5090);
const redisUrl = process.argv[3] ?? process.env.REDIS_URL ?? "redis://127.0.0.1:6379/0";
const pubClient = createClient({ url: redisUrl });
const subClient = pubClient.duplicate();
await Promise.all([pubClient.connect(), subClient.connect()]);

const http = createServer((req, res) => {
  res.writeHead(200, { "content-type": "application/json" });
  res.end('{"status":"ok"}');
});
const io = new Server(http, {
  cors: { origin: "*" },
  transports: ["websocket"],
  adapter: createAdapter(pubClient, subClient),
});

io.on("connection", (s) => {
  s.on("join", (d, ack) => {
    s.join(d.room);
    s.to(d.room).emit("peer-joined", { room: d.room, peerId: s.id });
    if (typeof ack === "function") ack({ ok: true, peerId: s.id });
  });
  for (const event of ["offer", "answer", "ice-candidate"]) {
    s.on(event, (d) => s.to(d.target).emit(event, { ...d, from: s.id }));
  }
});

http.listen(port, "127.0.0.1", () => console.log(`reference cluster node on ${port}`));
