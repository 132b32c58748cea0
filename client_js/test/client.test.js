import assert from "node:assert/strict";
import { beforeEach, test } from "node:test";

import { SignalingClient, SignalingError } from "../client.js";
import { linkKey, routeOf } from "../protocol.js";
import { FakePC, FakeSocket, FakeStream, deferred, tick } from "./fakes.js";

let socket;
let stream;
let client;
let events;

const SESSION = { peerId: "me", secret: "secret-1", grace: 30 };

beforeEach(() => {
  FakePC.instances = [];
  socket = new FakeSocket("me");
  stream = new FakeStream();
  client = new SignalingClient(socket, { localStream: stream, RTCPeerConnection: FakePC });
  events = [];
  for (const name of ["peer-joined", "peer-left", "stream-ended", "viewer-joined", "viewer-left", "reconnected", "disconnected", "error"]) {
    client.on(name, (detail) => events.push([name, detail]));
  }
  socket.open(SESSION);
  socket.replies.join = ({ room }) => ({ ok: true, peerId: "me", room, peers: [], iceServers: [{ urls: "stun:s" }] });
});

async function settle() {
  for (let i = 0; i < 5; i += 1) await tick();
}

test("protocol: link keys and routes", () => {
  assert.equal(linkKey("p"), "peer:p");
  assert.equal(linkKey("p", "s"), "stream:s:p");
  assert.deepEqual(routeOf({ from: "p", room: "r" }), { peerId: "p", streamId: null });
  assert.deepEqual(routeOf({ from: "p", streamId: "s" }), { peerId: "p", streamId: "s" });
});

test("join reports the peers already there and waits for their offers", async () => {
  socket.replies.join = ({ room }) => ({ ok: true, peerId: "me", room, peers: [{ peerId: "x", metadata: { n: 1 } }], iceServers: [] });
  await client.join("lobby", { name: "me" });
  assert.deepEqual(socket.sentOf("join"), [{ room: "lobby", metadata: { name: "me" } }]);
  assert.deepEqual(events, [["peer-joined", { room: "lobby", peerId: "x", metadata: { n: 1 } }]]);
  assert.equal(FakePC.instances.length, 0);
});

test("a newcomer gets an offer with our tracks and a data channel", async () => {
  await client.join("lobby");
  socket.deliver("peer-joined", { room: "lobby", peerId: "new", metadata: {} });
  await settle();
  const [pc] = FakePC.instances;
  assert.deepEqual(pc.config, { iceServers: [{ urls: "stun:s" }] });
  assert.equal(pc.senders.length, 2);
  assert.equal(pc.channels.length, 1);
  const [offer] = socket.sentOf("offer");
  assert.deepEqual(offer, { target: "new", sdp: pc.localDescription.sdp });
  socket.deliver("answer", { from: "new", room: "lobby", sdp: "their-answer" });
  await settle();
  assert.equal(pc.signalingState, "stable");
});

test("an offer from a peer already in the room is answered with our tracks", async () => {
  await client.join("lobby");
  // The candidate arrives while the offer is still being applied: it waits for it.
  socket.deliver("offer", { from: "old", room: "lobby", sdp: "their-offer" });
  socket.deliver("ice-candidate", { from: "old", room: "lobby", candidate: { candidate: "c", sdpMid: "0", sdpMLineIndex: 0 } });
  await settle();
  const [pc] = FakePC.instances;
  assert.equal(pc.senders.length, 2);
  assert.equal(pc.channels.length, 0, "the answerer takes the offerer's channel");
  assert.deepEqual(socket.sentOf("answer"), [{ target: "old", sdp: pc.localDescription.sdp }]);
  socket.deliver("ice-candidate", { from: "old", room: "lobby", candidate: { candidate: "c2", sdpMid: "0", sdpMLineIndex: 0 } });
  await settle();
  assert.deepEqual(pc.added.map((c) => c.candidate), ["c", "c2"]);
});

test("send reaches open channels, one peer or all", async () => {
  await client.join("lobby");
  for (const peerId of ["a", "b"]) socket.deliver("peer-joined", { room: "lobby", peerId, metadata: {} });
  await settle();
  const [a, b] = FakePC.instances;
  a.channels[0].open();
  assert.equal(client.send("all", "hi"), 1);
  b.channels[0].open();
  assert.equal(client.send("all", "both"), 2);
  assert.equal(client.send("b", "only b"), 1);
  assert.deepEqual(a.channels[0].sent, ["hi", "both"]);
  assert.deepEqual(b.channels[0].sent, ["both", "only b"]);
});

test("a peer sharing two rooms keeps its connection until the last one is left", async () => {
  await client.join("one");
  await client.join("two");
  socket.deliver("peer-joined", { room: "one", peerId: "p", metadata: {} });
  socket.deliver("peer-joined", { room: "two", peerId: "p", metadata: {} });
  await settle();
  assert.equal(FakePC.instances.length, 1);
  socket.deliver("peer-left", { room: "one", peerId: "p", reason: "left" });
  assert.equal(FakePC.instances[0].closed, false);
  socket.deliver("peer-left", { room: "two", peerId: "p", reason: "disconnected" });
  assert.equal(FakePC.instances[0].closed, true);
  assert.equal(client.links.size, 0);
});

test("publisher: one connection per viewer, offered with the stream id", async () => {
  const camera = new FakeStream();
  await client.publish("show", camera);
  assert.deepEqual(socket.sentOf("publish"), [{ streamId: "show" }]);
  for (const viewerId of ["v1", "v2"]) socket.deliver("viewer-joined", { streamId: "show", viewerId });
  await settle();
  assert.equal(FakePC.instances.length, 2);
  assert.deepEqual(
    socket.sentOf("offer").map(({ target, streamId }) => [target, streamId]),
    [["v1", "show"], ["v2", "show"]],
  );
  socket.deliver("viewer-left", { streamId: "show", viewerId: "v1", reason: "stopped" });
  assert.equal(FakePC.instances[0].closed, true);
  assert.equal(FakePC.instances[1].closed, false);
});

test("viewer: answers the publisher's offer without sending media; stream-ended closes it", async () => {
  await client.play("show");
  socket.deliver("offer", { from: "pub", streamId: "show", sdp: "offer" });
  socket.deliver("offer", { from: "stranger", streamId: "not-played", sdp: "offer" });
  await settle();
  assert.equal(FakePC.instances.length, 1);
  const [pc] = FakePC.instances;
  assert.equal(pc.senders.length, 0);
  assert.deepEqual(socket.sentOf("answer"), [{ target: "pub", streamId: "show", sdp: pc.localDescription.sdp }]);
  socket.deliver("stream-ended", { streamId: "show", reason: "stopped" });
  assert.equal(pc.closed, true);
  assert.deepEqual(events.at(-1), ["stream-ended", { streamId: "show", reason: "stopped" }]);
});

test("refusals become SignalingErrors with the server's code", async () => {
  socket.replies.join = () => ({ ok: false, error: { code: "room_full", message: "full" } });
  await assert.rejects(client.join("full"), (error) => error instanceof SignalingError && error.code === "room_full");
  assert.equal(client.rooms.size, 0);
});

test("fresh ICE servers replace the old ones on every connection", async () => {
  await client.join("lobby");
  socket.deliver("peer-joined", { room: "lobby", peerId: "p", metadata: {} });
  await settle();
  const [pc] = FakePC.instances;
  const fresh = [{ urls: "turn:t", username: "2:u", credential: "c" }];
  socket.deliver("ice-servers", { iceServers: fresh });
  assert.deepEqual(pc.configured, { iceServers: fresh });
  assert.deepEqual(client.iceServers, fresh);
});

test("publish and play take their ICE servers from the ack", async () => {
  const turn = [{ urls: "turn:t", username: "1:u", credential: "c" }];
  socket.replies.play = () => ({ ok: true, streamId: "show", publisher: "pub", room: null, iceServers: turn });
  await client.play("show");
  socket.deliver("offer", { from: "pub", streamId: "show", sdp: "offer" });
  await settle();
  assert.deepEqual(FakePC.instances[0].config, { iceServers: turn });
});

test("leaving a room ends what was published in it", async () => {
  await client.join("conf");
  await client.publish("cam", new FakeStream(), { room: "conf" });
  socket.deliver("viewer-joined", { streamId: "cam", viewerId: "v" });
  await settle();
  await client.leave("conf");
  assert.equal(client.published.size, 0);
  assert.ok(FakePC.instances.every((pc) => pc.closed));
});

test("close releases every connection, track and listener", async () => {
  await client.join("lobby");
  const camera = new FakeStream();
  await client.publish("cam", camera);
  socket.deliver("peer-joined", { room: "lobby", peerId: "p", metadata: {} });
  socket.deliver("viewer-joined", { streamId: "cam", viewerId: "v" });
  await settle();
  client.close();
  assert.ok(FakePC.instances.every((pc) => pc.closed));
  assert.ok(stream.getTracks().every((track) => track.stopped));
  assert.ok(camera.getTracks().every((track) => track.stopped));
  assert.equal(socket.handlers.size, 0);
  assert.equal(socket.disconnected, true);
  assert.equal(client.listenerCount("peer-joined"), 0);
  assert.equal(client.links.size, 0);
});

// Sessions and resume (issue 13): a drop is not a departure.

// The server's ack to a resume that kept (or rebuilt) everything the client claimed.
function ackFor({ restore }, resumed = "kept") {
  return {
    ok: true,
    peerId: "me",
    resumed,
    rooms: restore.rooms.map(({ room, peers }) => ({ room, peers: peers.map((peerId) => ({ peerId, metadata: {} })) })),
    published: restore.published.map(({ streamId }) => streamId),
    playing: restore.playing.map(({ streamId }) => streamId),
    lost: { rooms: [], streams: [] },
    iceServers: [{ urls: "stun:s" }],
  };
}

const REFUSED = { ok: false, error: { code: "session_expired", message: "too late" } };
const FRESH = { peerId: "me2", secret: "secret-2", grace: 30 };

// In the lobby with "p" (negotiated), publishing "cam" (in the lobby) to viewer "v", playing
// "show" from "pub": one connection of each kind, all stable.
async function inCall() {
  await client.join("lobby", { name: "me" });
  await client.publish("cam", new FakeStream(), { room: "lobby" });
  await client.play("show");
  socket.deliver("peer-joined", { room: "lobby", peerId: "p", metadata: {} });
  socket.deliver("viewer-joined", { streamId: "cam", viewerId: "v" });
  socket.deliver("offer", { from: "pub", streamId: "show", sdp: "their-offer" });
  await settle();
  socket.deliver("answer", { from: "p", room: "lobby", sdp: "answer" });
  socket.deliver("answer", { from: "v", streamId: "cam", sdp: "answer" });
  await settle();
  assert.ok(FakePC.instances.every((pc) => pc.signalingState === "stable"));
  return { mesh: client.links.get("peer:p").pc, viewer: client.links.get("stream:cam:v").pc, played: client.links.get("stream:show:pub").pc };
}

const names = (sent) => sent.map(([name]) => name);

test("the session event names the client before any join", () => {
  assert.equal(client.peerId, "me");
  assert.equal(client.signalingLive, true);
});

test("a dropped socket keeps every connection and track, and nobody leaves", async () => {
  await inCall();
  const tracks = client.localStream.getTracks();
  socket.drop();
  assert.equal(client.signalingLive, false);
  assert.equal(client.peerId, "me", "the id survives: it is resumed");
  assert.ok(FakePC.instances.every((pc) => !pc.closed));
  assert.equal(client.links.size, 3);
  assert.ok(tracks.every((track) => !track.stopped));
  assert.deepEqual(events.filter(([name]) => name === "peer-left"), []);
  assert.deepEqual(events.at(-1), ["disconnected", { reason: "transport close" }]);
  assert.equal(socket.connectCalls, 0, "socket.io reconnects by itself after a transport close");
});

test("the resume carries the old session and what the client holds", async () => {
  await inCall();
  await client.play("unknown-publisher"); // no offer yet and no publisher in the ack: not claimed
  socket.drop();
  socket.replies.resume = (payload) => ackFor(payload);
  // This connection's own session may come before the connect event: it is not the one resumed.
  socket.open({ peerId: "other", secret: "other-secret", grace: 30 }, { sessionFirst: true });
  assert.deepEqual(socket.sentOf("resume"), [
    {
      peerId: "me",
      secret: "secret-1",
      restore: {
        rooms: [{ room: "lobby", metadata: { name: "me" }, peers: ["p"] }],
        published: [{ streamId: "cam", room: "lobby", viewers: ["v"] }],
        playing: [{ streamId: "show", publisher: "pub" }],
      },
    },
  ]);
  await settle();
  assert.equal(client.peerId, "me");
  assert.deepEqual(events.at(-1), ["reconnected", { peerId: "me", resumed: "kept" }]);
});

test("signaling made while disconnected goes out after the resume, in order, never before", async () => {
  const { mesh } = await inCall();
  socket.drop();
  socket.sent = [];
  // A track change and a candidate during the gap: the renegotiation is queued, not lost.
  client.setLocalStream(new FakeStream());
  mesh.onicecandidate({ candidate: { candidate: "late", sdpMid: "0", sdpMLineIndex: 0 } });
  await settle();
  assert.equal(mesh.signalingState, "have-local-offer");
  assert.deepEqual(socket.sendBuffer, [], "nothing is left in socket.io's buffer");

  const reply = deferred();
  socket.replies.resume = () => reply.promise;
  socket.open(FRESH);
  await settle();
  assert.deepEqual(names(socket.sent), ["resume"], "nothing before the resume is answered");
  assert.equal(client.signalingLive, false);

  reply.resolve(ackFor(socket.sentOf("resume")[0]));
  await settle();
  assert.deepEqual(socket.sent.slice(1), [
    ["ice-candidate", { target: "p", candidate: { candidate: "late", sdpMid: "0", sdpMLineIndex: 0 } }],
    ["offer", { target: "p", sdp: mesh.localDescription.sdp }],
  ]);
  assert.equal(mesh.rollbacks, 0, "a kept session lost nothing: no repair");
  assert.equal(client.signalingLive, true);
  assert.deepEqual(events.at(-1), ["reconnected", { peerId: "me", resumed: "kept" }]);
});

test("requests made while disconnected wait until the session is back", async () => {
  await inCall();
  socket.drop();
  socket.sent = [];
  let joined = false;
  const joining = client.join("two").then(() => (joined = true));
  const stopping = client.stop("show");
  await settle();
  assert.deepEqual(socket.sent, []);
  assert.equal(client.links.has("stream:show:pub"), false, "a stopped stream's media stops at once");

  const reply = deferred();
  socket.replies.resume = () => reply.promise;
  socket.open(FRESH);
  await settle();
  assert.deepEqual(names(socket.sent), ["resume"]);
  assert.equal(joined, false);
  // Still ours until the server hears the stop: claimed, so a rebuilt session has it to stop.
  assert.deepEqual(socket.sentOf("resume")[0].restore.playing, [{ streamId: "show", publisher: "pub" }]);

  reply.resolve(ackFor(socket.sentOf("resume")[0]));
  await joining;
  await stopping;
  assert.deepEqual(names(socket.sent), ["resume", "join", "stop"]);
  assert.equal(client.rooms.has("two"), true);
  assert.equal(client.playing.has("show"), false);
});

test("a refused resume falls back to a full rejoin, with the connection's own session", async () => {
  const { mesh } = await inCall();
  socket.drop();
  client.setLocalStream(new FakeStream()); // queued, then dropped with the links
  await settle();
  socket.replies.resume = () => REFUSED;
  socket.replies.join = ({ room }) => ({ ok: true, peerId: "me2", room, peers: [], iceServers: [] });
  socket.sent = [];
  socket.open(FRESH);
  await settle();
  assert.ok(FakePC.instances.every((pc) => pc.closed));
  assert.equal(client.links.size, 0);
  assert.deepEqual(events.filter(([name]) => name === "peer-left"), [["peer-left", { room: "lobby", peerId: "p", reason: "reconnecting" }]]);
  assert.deepEqual(socket.sent, [
    ["resume", socket.sentOf("resume")[0]],
    ["join", { room: "lobby", metadata: { name: "me" } }],
    ["publish", { streamId: "cam", room: "lobby" }],
    ["play", { streamId: "show" }],
  ]);
  assert.equal(mesh.closed, true);
  assert.deepEqual(events.at(-1), ["reconnected", { peerId: "me2", resumed: false }]);

  // The next drop resumes the session this connection got.
  socket.drop();
  socket.replies.resume = (payload) => ackFor(payload);
  socket.open({ peerId: "me3", secret: "secret-3", grace: 30 });
  const [, again] = socket.sentOf("resume");
  assert.deepEqual([again.peerId, again.secret], ["me2", "secret-2"]);
});

test("a resume that gets no answer in time counts as refused", async () => {
  await inCall();
  socket.drop();
  socket.replies.resume = () => Promise.reject(new Error("operation has timed out"));
  socket.open(FRESH);
  await settle();
  assert.ok(FakePC.instances.every((pc) => pc.closed));
  assert.deepEqual(events.at(-1), ["reconnected", { peerId: "me", resumed: false }]);
  assert.equal(socket.sentOf("join").length, 2);
});

test("a resume the shared state cannot answer now is asked for again, not given up", async () => {
  client.resumeRetryDelay = 0;
  await inCall();
  socket.drop();
  socket.replies.resume = () => ({ ok: false, error: { code: "service_unavailable", message: "Redis is away" } });
  socket.open(FRESH);
  await settle();
  await new Promise((done) => setTimeout(done, 5));
  assert.equal(socket.disconnected, true, "this connection is let go");
  assert.equal(socket.connectCalls, 1, "and a new one made");
  assert.ok(FakePC.instances.every((pc) => !pc.closed), "nothing rebuilt");
  assert.equal(socket.sentOf("join").length, 1, "no rejoin");
  socket.replies.resume = (payload) => ackFor(payload);
  socket.drop("io client disconnect");
  socket.open({ peerId: "me3", secret: "secret-3", grace: 30 });
  await settle();
  const resumes = socket.sentOf("resume");
  assert.equal(resumes.length, 2);
  assert.equal(resumes[1].peerId, resumes[0].peerId);
  assert.equal(events.at(-1)[0], "reconnected");
  assert.notEqual(events.at(-1)[1].resumed, false);
});

test("a refusal while rejoining does not stop the rest from coming back", async () => {
  await client.join("lobby");
  await client.play("gone-show");
  await client.publish("cam", new FakeStream());
  socket.drop();
  socket.replies.resume = () => REFUSED;
  socket.replies.play = () => ({ ok: false, error: { code: "no_such_stream", message: "gone" } });
  socket.sent = [];
  socket.open(FRESH);
  await settle();
  assert.deepEqual(names(socket.sent), ["resume", "join", "publish", "play"]);
  assert.ok(events.some(([name, detail]) => name === "stream-ended" && detail.streamId === "gone-show"));
  assert.equal(events.at(-1)[0], "reconnected");
  assert.equal(client.playing.has("gone-show"), false);
});

test("without a session from the server (an older one) a reconnect rejoins at once", async () => {
  socket = new FakeSocket("me");
  client = new SignalingClient(socket, { localStream: stream, RTCPeerConnection: FakePC });
  socket.replies.join = ({ room }) => ({ ok: true, peerId: "old-id", room, peers: [], iceServers: [] });
  socket.open();
  await client.join("lobby");
  socket.drop("io server disconnect");
  assert.equal(socket.connectCalls, 1, "a server-side disconnect is retried by the client");
  socket.replies.join = ({ room }) => ({ ok: true, peerId: "new-id", room, peers: [], iceServers: [] });
  socket.open();
  await settle();
  assert.deepEqual(names(socket.sent), ["join", "join"]);
  assert.equal(client.peerId, "new-id");
});

test("a session with no grace is not resumed: the server ended it with its connection", async () => {
  socket.deliver("session", { peerId: "me", secret: "secret-1", grace: 0 }); // as if the first
  await client.join("lobby");
  socket.drop();
  socket.open(FRESH);
  await settle();
  assert.deepEqual(socket.sentOf("resume"), []);
  assert.equal(socket.sentOf("join").length, 2);
  assert.deepEqual(events.at(-1), ["reconnected", { peerId: "me", resumed: false }]);
});

test("a restored session rolls back cut offers and restarts broken paths", async () => {
  await client.join("lobby");
  // To "p" our offer went out and its answer was lost in the crash; "q" offered to us, and the
  // path to it broke.
  socket.deliver("peer-joined", { room: "lobby", peerId: "p", metadata: {} });
  socket.deliver("offer", { from: "q", room: "lobby", sdp: "their-offer" });
  await settle();
  const p = client.links.get("peer:p").pc;
  const q = client.links.get("peer:q").pc;
  assert.equal(p.signalingState, "have-local-offer");
  const cut = p.localDescription.sdp;
  socket.drop();
  q.connectionState = "disconnected";
  socket.sent = [];
  socket.replies.resume = (payload) => ackFor(payload, "restored");
  socket.open(FRESH);
  await settle();
  assert.equal(p.rollbacks, 1);
  assert.equal(q.restarts, 1);
  assert.equal(q.rollbacks, 0);
  const offers = socket.sentOf("offer");
  assert.deepEqual(offers.map(({ target }) => target).sort(), ["p", "q"]);
  assert.notEqual(offers.find(({ target }) => target === "p").sdp, cut);
  assert.equal(names(socket.sent)[0], "resume");
  assert.deepEqual(events.at(-1), ["reconnected", { peerId: "me", resumed: "restored" }]);
});

test("a restored session never sends a queued offer it rolled back", async () => {
  const { mesh } = await inCall();
  socket.drop();
  client.setLocalStream(new FakeStream());
  await settle();
  const stale = mesh.localDescription.sdp;
  socket.sent = [];
  socket.replies.resume = (payload) => ackFor(payload, "restored");
  socket.open(FRESH);
  await settle();
  assert.equal(mesh.rollbacks, 1);
  assert.deepEqual(socket.sentOf("offer"), [{ target: "p", sdp: mesh.localDescription.sdp }]);
  assert.notEqual(mesh.localDescription.sdp, stale);
});

test("peers in the ack the client did not know are newcomers: it offers to them", async () => {
  await inCall();
  socket.drop();
  socket.sent = [];
  socket.replies.resume = (payload) => {
    const ack = ackFor(payload);
    ack.rooms[0].peers.push({ peerId: "n", metadata: { name: "N" } });
    return ack;
  };
  socket.open(FRESH);
  await settle();
  assert.deepEqual(events.filter(([name]) => name === "peer-joined").at(-1), ["peer-joined", { room: "lobby", peerId: "n", metadata: { name: "N" } }]);
  assert.deepEqual(socket.sentOf("offer").map(({ target }) => target), ["n"]);
  // The held peer-joined that follows the ack repeats it: nothing happens twice.
  const before = events.length;
  socket.deliver("peer-joined", { room: "lobby", peerId: "n", metadata: { name: "N" } });
  await settle();
  assert.equal(events.length, before);
  assert.equal(FakePC.instances.filter((pc) => !pc.closed).length, 4);
});

test("rooms and streams the server could not restore are gone", async () => {
  const { mesh, viewer, played } = await inCall();
  await client.join("two");
  socket.deliver("peer-joined", { room: "two", peerId: "p", metadata: {} });
  socket.deliver("peer-joined", { room: "two", peerId: "q", metadata: {} });
  await settle();
  const q = client.links.get("peer:q").pc;
  socket.drop();
  q.onicecandidate({ candidate: { candidate: "for-q", sdpMid: "0", sdpMLineIndex: 0 } }); // queued, then moot
  socket.sent = [];
  socket.replies.resume = (payload) => {
    const ack = ackFor(payload, "restored");
    ack.rooms = ack.rooms.filter(({ room }) => room !== "two");
    ack.published = [];
    ack.playing = [];
    ack.lost = { rooms: ["two"], streams: ["cam", "show"] };
    return ack;
  };
  socket.open(FRESH);
  await settle();
  assert.deepEqual(
    events.filter(([name]) => name === "peer-left"),
    [
      ["peer-left", { room: "two", peerId: "p", reason: "unavailable" }],
      ["peer-left", { room: "two", peerId: "q", reason: "unavailable" }],
    ],
  );
  assert.equal(q.closed, true);
  assert.equal(mesh.closed, false, "p is still in the lobby with us");
  assert.deepEqual([...client.rooms.keys()], ["lobby"]);
  assert.equal(viewer.closed, true);
  assert.equal(played.closed, true);
  assert.equal(client.published.size + client.playing.size, 0);
  assert.deepEqual(events.filter(([name]) => name === "stream-ended"), [["stream-ended", { streamId: "show", reason: "unavailable" }]]);
  assert.deepEqual(names(socket.sent), ["resume"], "nothing for q, nothing asked again");
});

test("after a resume, what the server does not hold is asked for again, and what it should not is undone", async () => {
  await inCall();
  socket.drop();
  socket.sent = [];
  // A rejoin cut short by the drop (no "cam" on the server) and a join whose ack the drop lost.
  socket.replies.resume = (payload) => {
    const ack = ackFor(payload);
    ack.published = [];
    ack.rooms.push({ room: "ghost", peers: [] });
    return ack;
  };
  socket.open(FRESH);
  await settle();
  assert.deepEqual(socket.sent.slice(1), [
    ["leave", { room: "ghost" }],
    ["publish", { streamId: "cam", room: "lobby" }],
  ]);
  assert.equal(events.at(-1)[0], "reconnected");
});

test("a drop during the resume resumes again on the next connection", async () => {
  const { mesh } = await inCall();
  socket.drop();
  const first = deferred();
  socket.replies.resume = () => first.promise;
  socket.open(FRESH);
  socket.drop();
  first.resolve(Promise.reject(new Error("socket has been disconnected")));
  await settle();
  assert.equal(mesh.closed, false, "not a refusal: nothing is rebuilt");
  socket.replies.resume = (payload) => ackFor(payload);
  socket.open({ peerId: "me3", secret: "secret-3", grace: 30 });
  await settle();
  assert.deepEqual(socket.sentOf("resume").map(({ secret }) => secret), ["secret-1", "secret-1"]);
  assert.deepEqual(events.filter(([name]) => name === "reconnected"), [["reconnected", { peerId: "me", resumed: "kept" }]]);
});

test("a kicked client does not resume", async () => {
  await client.join("lobby");
  socket.deliver("kicked", { reason: "operator" });
  socket.drop("io server disconnect");
  assert.equal(socket.connectCalls, 0);
  socket.open(FRESH); // the app reconnected it anyway: a plain rejoin
  await settle();
  assert.deepEqual(socket.sentOf("resume"), []);
  assert.equal(socket.sentOf("join").length, 2);
});

test("close rejects the requests waiting for signaling", async () => {
  socket.drop();
  const joining = client.join("lobby");
  client.close();
  await assert.rejects(joining, (error) => error instanceof SignalingError && error.code === "closed");
  assert.deepEqual(socket.sendBuffer, []);
});
