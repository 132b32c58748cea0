// Load generator for the benchmarks. One scenario per run; prints one JSON line with the results.
//
//   node load.mjs <scenario> --url http://127.0.0.1:5080 [--protocol socketio|antmedia]
//        [--url2 http://...  (peers' partners on a second node)] [--pairs N] [--seconds S]
//        [--rate R] [--clients K] [--calls M] [--procs P] [--gated 1]
//   node load.mjs storm --url http://127.0.0.1:5080 --clients K --mode resume|rejoin
//        [--room-size 4] [--reconnect-delay 100] [--reconnect-delay-max 200] [--timeout 120]
//
// --gated 1 (throughput): print {"ready": pairs} once all pairs have joined, start sending only
// when a line arrives on stdin, and print the result before closing the connections, so that
// whoever drives it can measure the servers over the relaying alone.
// --procs P splits throughput and latency runs over P processes (pairs and rate divided among
// them, results merged), so the generator can use as many cores as a machine offers.
//
// Scenarios: throughput (closed-loop ping-pong of offer/answer/candidates per pair), latency (a
// fixed total rate), capacity (K idle joined clients, held until stdin closes), setup (time from
// the second peer's join until both sides hold the offer and the answer), storm (K idle joined
// clients in rooms of --room-size that ride out a restart of the server: see `storm` below).
import { fork } from "node:child_process";
import { performance } from "node:perf_hooks";
import { io } from "socket.io-client";
import WebSocket from "ws";

const args = parseArgs(process.argv.slice(2));
const scenario = args._[0];
const protocol = args.protocol ?? "socketio";
const SDP = realisticSdp();
const CANDIDATE = "candidate:842163049 1 udp 1677729535 203.0.113.7 46154 typ srflx raddr 10.0.0.2 rport 46154 generation 0 ufrag sXrK network-cost 999";
// Per pair, the exchange a real call makes: offer, answer, then candidates both ways.
const SEQUENCE = ["offer", "answer", "candidate", "candidate", "candidate", "candidate", "candidate", "candidate"];

function parseArgs(argv) {
  const out = { _: [] };
  for (let i = 0; i < argv.length; i += 1) {
    if (argv[i].startsWith("--")) out[argv[i].slice(2)] = argv[++i];
    else out._.push(argv[i]);
  }
  return out;
}

function realisticSdp() {
  // About the size of a Chrome offer with one audio and one video section (~5 KB).
  const lines = ["v=0", "o=- 4611731400430051336 2 IN IP4 127.0.0.1", "s=-", "t=0 0", "a=group:BUNDLE 0 1"];
  for (const [kind, mid] of [["audio", 0], ["video", 1]]) {
    lines.push(`m=${kind} 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126`, "c=IN IP4 0.0.0.0", `a=mid:${mid}`);
    for (let i = 0; i < 30; i += 1) lines.push(`a=rtpmap:${96 + i} codec${i}/90000`, `a=rtcp-fb:${96 + i} nack pli`);
  }
  return `${lines.join("\r\n")}\r\n`;
}

const stamp = (text) => `${text}#t=${(performance.timeOrigin + performance.now()).toFixed(3)}#`;
const age = (text) => {
  const match = /#t=([\d.]+)#/.exec(text);
  return match ? performance.timeOrigin + performance.now() - Number(match[1]) : NaN;
};

// A client of either protocol, reduced to what the scenarios need.
class SocketIoClient {
  constructor(url) {
    this.socket = io(url, { transports: ["websocket"], reconnection: false, forceNew: true });
    this.handlers = [];
    for (const kind of ["offer", "answer", "ice-candidate"]) {
      this.socket.on(kind, (m) => {
        const signal = kind === "ice-candidate" ? "candidate" : kind;
        const body = signal === "candidate" ? m.candidate.candidate : m.sdp;
        for (const h of this.handlers) h(signal, body, m.from);
      });
    }
    this.socket.on("peer-joined", (m) => this.onPeer?.(m.peerId));
  }
  ready() {
    return new Promise((resolve, reject) => {
      this.socket.once("connect", resolve);
      this.socket.once("connect_error", reject);
    });
  }
  async join(room) {
    const reply = await this.socket.timeout(30000).emitWithAck("join", { room });
    if (!reply.ok) throw new Error(JSON.stringify(reply));
    this.peerId = reply.peerId;
    return reply;
  }
  send(kind, body, target) {
    if (kind === "candidate") {
      this.socket.emit("ice-candidate", { target, candidate: { candidate: body, sdpMid: "0", sdpMLineIndex: 0 } });
    } else {
      this.socket.emit(kind, { target, sdp: body });
    }
  }
  close() {
    this.socket.disconnect();
  }
}

class AntMediaClient {
  constructor(url) {
    this.ws = new WebSocket(`${url.replace("http", "ws")}/WebRTCAppEE/websocket?target=origin`);
    this.handlers = [];
    this.waiting = new Map();
    // As Ant Media's SDK does: a connection that sends nothing for a while counts as gone.
    this.pinger = setInterval(() => {
      if (this.ws.readyState === WebSocket.OPEN) this.ws.send('{"command":"ping"}');
    }, 3000);
    this.ws.on("close", () => clearInterval(this.pinger));
    this.ws.on("message", (data) => {
      const m = JSON.parse(data);
      if (m.command === "takeConfiguration") for (const h of this.handlers) h(m.type, m.sdp);
      else if (m.command === "takeCandidate") for (const h of this.handlers) h("candidate", m.candidate);
      else if (m.command === "start") this.onPeer?.(null);
      else if (m.command === "notification" && m.definition === "joined") this.waiting.get("joined")?.();
      else if (m.command === "error") console.error(JSON.stringify(m));
    });
  }
  ready() {
    return new Promise((resolve, reject) => {
      this.ws.once("open", resolve);
      this.ws.once("error", reject);
    });
  }
  join(room) {
    this.room = room;
    return new Promise((resolve) => {
      this.waiting.set("joined", resolve);
      this.ws.send(JSON.stringify({ command: "join", streamId: room }));
    });
  }
  send(kind, body) {
    if (kind === "candidate") {
      this.ws.send(JSON.stringify({ command: "takeCandidate", streamId: this.room, label: 0, id: "0", candidate: body }));
    } else {
      this.ws.send(JSON.stringify({ command: "takeConfiguration", streamId: this.room, type: kind, sdp: body }));
    }
  }
  close() {
    clearInterval(this.pinger);
    this.ws.close();
  }
}

async function client(url) {
  const c = protocol === "antmedia" ? new AntMediaClient(url) : new SocketIoClient(url);
  await c.ready();
  return c;
}

// Pairs of joined clients; with --url2 the second of each pair is on the other node.
async function makePairs(count, tag) {
  const pairs = [];
  for (let start = 0; start < count; start += 100) {
    const batch = [];
    for (let i = start; i < Math.min(count, start + 100); i += 1) {
      batch.push(
        (async () => {
          const room = `${tag}-${process.pid}-${i}`;
          const a = await client(args.url);
          await a.join(room);
          const b = await client(args.url2 ?? args.url);
          const joined = new Promise((resolve) => (a.onPeer = resolve));
          await b.join(room);
          await joined;
          return { a, b };
        })(),
      );
    }
    pairs.push(...(await Promise.all(batch)));
  }
  return pairs;
}

const body = (kind) => stamp(kind === "candidate" ? CANDIDATE : SDP);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// With --gated: say so once ready, then wait for the go (a line on stdin).
async function gate(ready) {
  if (!args.gated) return;
  process.stdout.write(`${JSON.stringify({ ready })}\n`);
  await new Promise((resolve) => {
    process.stdin.once("data", resolve);
    process.stdin.resume();
  });
  process.stdin.pause();
}

async function throughput() {
  const pairs = await makePairs(Number(args.pairs ?? 50), "tp");
  const seconds = Number(args.seconds ?? 10);
  await gate(pairs.length);
  let received = 0;
  let running = true;
  for (const { a, b } of pairs) {
    let step = 0;
    const next = (from, to) => {
      if (!running) return;
      const kind = SEQUENCE[step++ % SEQUENCE.length];
      from.send(kind, body(kind), to.peerId);
    };
    a.handlers.push(() => { received += 1; next(a, b); });
    b.handlers.push(() => { received += 1; next(b, a); });
    next(a, b);
  }
  const started = performance.now();
  await sleep(seconds * 1000);
  running = false;
  const elapsed = (performance.now() - started) / 1000;
  return { pairs: pairs.length, seconds: elapsed, messages: received, rate: received / elapsed, close: pairs };
}

async function latency() {
  const pairs = await makePairs(Number(args.pairs ?? 20), "lat");
  const seconds = Number(args.seconds ?? 10);
  const rate = Number(args.rate ?? 500);
  const samples = [];
  for (const { b } of pairs) b.handlers.push((kind, text) => samples.push(age(text)));
  const interval = (1000 * pairs.length) / rate;
  const timers = pairs.map(({ a, b }, i) => {
    let step = 0;
    return setTimeout(function tick() {
      const kind = SEQUENCE[step++ % SEQUENCE.length];
      a.send(kind, body(kind), b.peerId);
      timers[i] = setTimeout(tick, interval);
    }, (interval * i) / pairs.length);
  });
  await sleep(seconds * 1000);
  timers.forEach(clearTimeout);
  await sleep(200);
  return { pairs: pairs.length, rate, ...percentiles(samples), ...(args.child ? { samples } : {}), close: pairs };
}

function percentiles(samples) {
  samples.sort((x, y) => x - y);
  const pick = (q) => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))];
  return { messages: samples.length, p50: pick(0.5), p99: pick(0.99), max: samples.at(-1) };
}

async function capacity() {
  const clients = Number(args.clients ?? 1000);
  const pairs = await makePairs(Math.ceil(clients / 2), "cap");
  process.stdout.write(`${JSON.stringify({ ready: pairs.length * 2 })}\n`);
  // Held until the runner has measured the server, then closed by closing our stdin.
  await new Promise((resolve) => {
    process.stdin.on("end", resolve);
    process.stdin.resume();
  });
  return { clients: pairs.length * 2, close: pairs };
}

async function setup() {
  const calls = Number(args.calls ?? 50);
  const times = [];
  for (let i = 0; i < calls; i += 1) {
    const room = `setup-${process.pid}-${i}`;
    const a = await client(args.url);
    await a.join(room);
    const b = await client(args.url2 ?? args.url);
    const done = new Promise((resolve) => {
      a.onPeer = (peerId) => a.send("offer", body("offer"), peerId ?? b.peerId);
      b.handlers.push((kind, text, from) => kind === "offer" && b.send("answer", body("answer"), from ?? a.peerId));
      a.handlers.push((kind) => kind === "answer" && resolve());
    });
    const started = performance.now();
    await b.join(room);
    await done;
    times.push(performance.now() - started);
    a.close();
    b.close();
  }
  times.sort((x, y) => x - y);
  return { calls, p50: times[Math.floor(times.length / 2)], p99: times[Math.floor(times.length * 0.99)], max: times.at(-1) };
}

// Runs this scenario in `procs` child processes, each with its share, and merges what they find.
// Children of a gated run are gated too: the parent is ready when all are, and passes the go on.
async function split(procs) {
  const share = { ...args, child: "1", procs: "1" };
  if (args.pairs) share.pairs = String(Math.ceil(Number(args.pairs) / procs));
  if (args.rate) share.rate = String(Number(args.rate) / procs);
  const flags = Object.entries(share).filter(([k]) => k !== "_").flatMap(([k, v]) => [`--${k}`, v]);
  const children = Array.from({ length: procs }, () =>
    fork(new URL(import.meta.url).pathname, [scenario, ...flags], { silent: true }),
  );
  const lines = children.map((child) => {
    const waiting = [];
    let buffered = "";
    child.stdout.on("data", (chunk) => {
      buffered += chunk;
      let end;
      while ((end = buffered.indexOf("\n")) >= 0) {
        const line = JSON.parse(buffered.slice(0, end));
        buffered = buffered.slice(end + 1);
        waiting.shift()?.resolve(line);
      }
    });
    child.on("exit", (code) => code !== 0 && waiting.forEach((w) => w.reject(new Error(`child exited ${code}`))));
    return () => new Promise((resolve, reject) => waiting.push({ resolve, reject }));
  });
  if (args.gated) {
    const ready = await Promise.all(lines.map((next) => next()));
    await gate(ready.reduce((sum, r) => sum + r.ready, 0));
    children.forEach((child) => child.stdin.write("go\n"));
  }
  const outputs = await Promise.all(lines.map((next) => next()));
  if (scenario === "throughput") {
    const messages = outputs.reduce((sum, o) => sum + o.messages, 0);
    const seconds = Math.max(...outputs.map((o) => o.seconds));
    return { pairs: outputs.reduce((sum, o) => sum + o.pairs, 0), seconds, messages, rate: messages / seconds, procs };
  }
  const samples = outputs.flatMap((o) => o.samples);
  return { pairs: outputs.reduce((sum, o) => sum + o.pairs, 0), rate: Number(args.rate ?? 500), ...percentiles(samples), procs };
}

// A reconnect storm. K clients connect with socket.io's own reconnection on, join rooms of
// --room-size and learn their room's members (join acks, peer-joined), keeping their session's
// peerId and secret (the `session` event); then print {"ready": K} and wait for the server to go
// away and come back (whoever drives this restarts it). Each client, once its reconnection gets
// through, comes back one of two ways:
//   --mode resume: `resume {peerId, secret, restore: {rooms: [{room, metadata, peers}]}}`, back
//                  when the ack is ok (a refusal is counted, and the client joins afresh instead);
//   --mode rejoin: `join` again with a fresh peer id, as clients did before sessions existed.
// Prints when all are back, or --timeout seconds after ready, with times as epoch milliseconds.
// The reconnection delay is --reconnect-delay ms doubling per failed attempt up to
// --reconnect-delay-max, each +-50% at random (socket.io's default, 1 s up to 5 s, would make
// the figure mostly the clients' waiting).
async function storm() {
  const count = Number(args.clients ?? 1000);
  const roomSize = Number(args["room-size"] ?? 4);
  const mode = args.mode ?? "resume";
  if (!["resume", "rejoin"].includes(mode)) throw new Error(`--mode resume|rejoin, not ${mode}`);
  const options = {
    transports: ["websocket"],
    forceNew: true,
    reconnection: true,
    reconnectionDelay: Number(args["reconnect-delay"] ?? 100),
    reconnectionDelayMax: Number(args["reconnect-delay-max"] ?? 200),
    randomizationFactor: 0.5,
  };
  const deadline = performance.now() + Number(args.timeout ?? 120) * 1000;
  const now = () => performance.timeOrigin + performance.now();
  const stats = { back: 0, refused: {}, errors: 0, restored: 0, kept: 0, lost: 0, attempts: 0, connects: 0 };
  const times = { firstDown: null, lastDown: null, firstConnect: null, lastBack: null };
  const connected = []; // when each client's reconnection got through (epoch ms)
  const back = []; // when each was back
  let allBack;
  const everyoneBack = new Promise((resolve) => (allBack = resolve));

  const comeBack = async (c) => {
    try {
      if (mode === "resume") {
        const restore = { rooms: [{ room: c.room, metadata: c.metadata, peers: [...c.peers] }] };
        const reply = await c.socket.timeout(30000).emitWithAck("resume", { peerId: c.peerId, secret: c.secret, restore });
        if (reply.ok) {
          stats[reply.resumed] = (stats[reply.resumed] ?? 0) + 1;
          stats.lost += reply.lost.rooms.length + reply.lost.streams.length;
          for (const { peers } of reply.rooms) for (const p of peers) c.peers.add(p.peerId);
          return true;
        }
        stats.refused[reply.error?.code] = (stats.refused[reply.error?.code] ?? 0) + 1;
      }
      // A full rejoin: today's clients, and a resuming client that was refused.
      const reply = await c.socket.timeout(30000).emitWithAck("join", { room: c.room, metadata: c.metadata });
      if (!reply.ok) throw new Error(JSON.stringify(reply));
      c.peerId = reply.peerId;
      c.secret = c.fresh.secret;
      c.peers = new Set(reply.peers.map((p) => p.peerId));
      return true;
    } catch {
      stats.errors += 1;
      return false;
    }
  };

  const open = (i) =>
    new Promise((resolve, reject) => {
      const room = `storm-${process.pid}-${Math.floor(i / roomSize)}`;
      const c = { socket: io(args.url, options), room, metadata: { name: `client ${i}` }, peers: new Set(), state: "joining" };
      c.socket.on("session", (s) => {
        c.fresh = s;
        if (c.state === "joining") resolve(c);
      });
      c.socket.once("connect_error", reject);
      c.socket.on("peer-joined", (m) => c.peers.add(m.peerId));
      c.socket.on("peer-left", (m) => c.peers.delete(m.peerId));
      c.socket.io.on("reconnect_attempt", () => (stats.attempts += 1));
      c.socket.on("disconnect", () => {
        if (c.state !== "up") return;
        c.state = "down";
        times.firstDown ??= now();
        times.lastDown = now();
      });
      c.socket.on("connect", async () => {
        if (c.state !== "down") return;
        c.state = "coming back";
        stats.connects += 1;
        times.firstConnect ??= now();
        connected.push(now());
        if (await comeBack(c)) {
          c.state = "up";
          times.lastBack = now();
          back.push(now());
          if (++stats.back === count) allBack();
        } else if (c.socket.connected) {
          c.state = "failed";
        }
      });
    });

  const clients = [];
  for (let start = 0; start < count && performance.now() < deadline; start += 100) {
    const batch = [];
    for (let i = start; i < Math.min(count, start + 100); i += 1) {
      batch.push(
        (async () => {
          const c = await open(i);
          const reply = await c.socket.timeout(30000).emitWithAck("join", { room: c.room, metadata: c.metadata });
          if (!reply.ok) throw new Error(JSON.stringify(reply));
          c.peerId = reply.peerId;
          c.secret = c.fresh.secret;
          for (const p of reply.peers) c.peers.add(p.peerId);
          return c;
        })(),
      );
    }
    clients.push(...(await Promise.all(batch)));
  }
  // Everyone knows all of its room before the storm (the last peer-joined events may be in flight).
  const expected = (i) => Math.min(roomSize, count - Math.floor(i / roomSize) * roomSize) - 1;
  while (clients.some((c, i) => c.peers.size < expected(i)) && performance.now() < deadline) await sleep(20);
  if (clients.length < count || clients.some((c, i) => c.peers.size < expected(i))) {
    throw new Error(`storm: only ${clients.length} of ${count} clients joined their rooms in time`);
  }
  for (const c of clients) {
    if (c.peerId !== c.fresh.peerId) throw new Error("storm: join ack and session event disagree on the peer id");
    c.state = "up";
  }
  process.stdout.write(`${JSON.stringify({ ready: clients.length, rooms: Math.ceil(count / roomSize) })}\n`);

  // The server goes away; everyone comes back, or the deadline passes.
  const stormTimeout = Number(args.timeout ?? 120) * 1000;
  let timer;
  const outcome = await Promise.race([
    everyoneBack.then(() => "all back"),
    new Promise((resolve) => (timer = setTimeout(() => resolve("timed out"), stormTimeout))),
  ]);
  clearTimeout(timer);
  const spread = (list) => {
    list.sort((x, y) => x - y);
    const at = (q) => list[Math.min(list.length - 1, Math.floor(q * list.length))];
    return { p10: at(0.1), p50: at(0.5), p90: at(0.9), max: list.at(-1) };
  };
  return {
    clients: count,
    roomSize,
    mode,
    outcome,
    ...stats,
    ...times,
    connected: spread(connected),
    back: spread(back),
    reconnectDelay: options.reconnectionDelay,
    reconnectDelayMax: options.reconnectionDelayMax,
    randomizationFactor: options.randomizationFactor,
    close: clients.map((c) => ({ a: c.socket })), // socket.io sockets have close() too
  };
}

const scenarios = { throughput, latency, capacity, setup, storm };
const procs = Number(args.procs ?? 1);
const result = procs > 1 && ["throughput", "latency"].includes(scenario) ? await split(procs) : await scenarios[scenario]();
const { close = [], ...report } = result;
// Reported before the connections close, so that a gated run's window ends here.
process.stdout.write(`${JSON.stringify({ scenario, protocol, ...report })}\n`, () => {
  for (const { a, b } of close) {
    a.close();
    b?.close();
  }
  setTimeout(() => process.exit(0), 200);
});
