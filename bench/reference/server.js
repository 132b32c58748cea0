// The classic Node.js socket.io relay that a signaling server is usually compared with: join a
// room, then pass offer / answer / ice-candidate to `target`. No validation, no acks beyond join.
import { createServer } from "node:http";
import { Server } from "socket.io";

const port = Number(process.argv[2] ?? process.env.PORT ?? 5090);
const http = createServer((req, res) => {
  res.writeHead(200, { "content-type": "application/json" });
  res.end('{"status":"ok"}');
});
const io = new Server(http, { cors: { origin: "*" }, transports: ["websocket"] });

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

http.listen(port, "127.0.0.1", () => console.log(`reference relay on ${port}`));
