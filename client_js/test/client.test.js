import assert from "node:assert/strict";
import { beforeEach, test } from "node:test";

import { SignalingClient, SignalingError } from "../client.js";
import { linkKey, routeOf } from "../protocol.js";
import { FakePC, FakeSocket, FakeStream, tick } from "./fakes.js";

let socket;
let stream;
let client;
let events;

beforeEach(() => {
  FakePC.instances = [];
  socket = new FakeSocket("me");
  stream = new FakeStream();
  client = new SignalingClient(socket, { localStream: stream, RTCPeerConnection: FakePC });
  events = [];
  for (const name of ["peer-joined", "peer-left", "stream-ended", "viewer-joined", "viewer-left", "reconnected", "disconnected", "error"]) {
    client.on(name, (detail) => events.push([name, detail]));
  }
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

test("after a dropped socket it rejoins, republishes and replays by itself", async () => {
  socket.deliver("connect");
  await client.join("lobby", { name: "me" });
  await client.publish("cam", new FakeStream(), { room: "lobby" });
  await client.play("show");
  socket.deliver("peer-joined", { room: "lobby", peerId: "p", metadata: {} });
  await settle();
  socket.deliver("disconnect", "io server disconnect");
  assert.equal(FakePC.instances[0].closed, true);
  assert.deepEqual(events.filter(([name]) => name === "peer-left"), [["peer-left", { room: "lobby", peerId: "p", reason: "reconnecting" }]]);
  assert.equal(socket.connectCalls, 1, "a server-side disconnect is retried by the client");

  socket.sent = [];
  socket.id = "me-again";
  socket.deliver("connect");
  await settle();
  assert.deepEqual(socket.sent.map(([name, payload]) => [name, payload]), [
    ["join", { room: "lobby", metadata: { name: "me" } }],
    ["publish", { streamId: "cam", room: "lobby" }],
    ["play", { streamId: "show" }],
  ]);
  assert.equal(events.at(-1)[0], "reconnected");
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

test("a refusal while rejoining does not stop the rest from coming back", async () => {
  socket.deliver("connect");
  await client.join("lobby");
  await client.play("gone-show");
  await client.publish("cam", new FakeStream());
  socket.deliver("disconnect", "transport close");
  socket.replies.play = () => ({ ok: false, error: { code: "no_such_stream", message: "gone" } });
  socket.sent = [];
  socket.deliver("connect");
  await settle();
  assert.deepEqual(socket.sent.map(([name]) => name), ["join", "publish", "play"]);
  assert.ok(events.some(([name, detail]) => name === "stream-ended" && detail.streamId === "gone-show"));
  assert.equal(events.at(-1)[0], "reconnected");
  assert.equal(client.playing.has("gone-show"), false);
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
