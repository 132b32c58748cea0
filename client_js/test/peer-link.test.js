import assert from "node:assert/strict";
import { test } from "node:test";

import { PeerLink, candidateInit, isPolite } from "../peer-link.js";
import { FakePC, tick } from "./fakes.js";

function makeLink({ polite = false, createChannel = false } = {}) {
  const pc = new FakePC({});
  const signals = [];
  const link = new PeerLink({ pc, polite, createChannel, signal: (kind, body) => signals.push([kind, body]) });
  return { pc, link, signals };
}

test("roles are complementary and deterministic", () => {
  assert.equal(isPolite("a", "b"), true);
  assert.equal(isPolite("b", "a"), false);
  assert.equal(isPolite("a", "b"), !isPolite("b", "a"));
});

test("negotiation needed sends an offer", async () => {
  const { pc, signals } = makeLink();
  pc.onnegotiationneeded();
  await tick();
  await tick();
  assert.deepEqual(signals, [["offer", { sdp: pc.localDescription.sdp }]]);
});

test("an offer is answered after offer-accepted", async () => {
  const { pc, link, signals } = makeLink();
  const order = [];
  link.on("offer-accepted", () => order.push("accepted"));
  await link.handleDescription("offer", "remote-offer");
  order.push("answered");
  assert.deepEqual(order, ["accepted", "answered"]);
  assert.equal(signals[0][0], "answer");
  assert.equal(pc.signalingState, "stable");
});

test("candidates wait for the remote description, then go in order", async () => {
  const { pc, link } = makeLink();
  await link.handleCandidate({ candidate: "c1", sdpMid: "0", sdpMLineIndex: 0 });
  await link.handleCandidate(null);
  assert.deepEqual(pc.added, []);
  await link.handleDescription("offer", "remote-offer");
  assert.deepEqual(pc.added, [{ candidate: "c1", sdpMid: "0", sdpMLineIndex: 0 }, undefined]);
  await link.handleCandidate({ candidate: "c2", sdpMid: "0", sdpMLineIndex: 0 });
  assert.equal(pc.added.length, 3);
});

test("glare: the impolite side ignores the colliding offer", async () => {
  const { pc, link, signals } = makeLink({ polite: false });
  pc.onnegotiationneeded();
  await tick();
  await tick();
  assert.equal(pc.signalingState, "have-local-offer");
  const errors = [];
  link.on("error", (error) => errors.push(error));
  await link.handleDescription("offer", "their-offer");
  assert.equal(pc.remoteDescription, null);
  assert.deepEqual(signals.map(([kind]) => kind), ["offer"]);
  // Their candidates for the ignored offer are dropped silently.
  await link.handleCandidate({ candidate: "c", sdpMid: "0", sdpMLineIndex: 0 });
  assert.deepEqual(errors, []);
});

test("glare: the polite side rolls back and answers", async () => {
  const { pc, link, signals } = makeLink({ polite: true });
  pc.onnegotiationneeded();
  await tick();
  await tick();
  await link.handleDescription("offer", "their-offer");
  assert.equal(pc.remoteDescription.sdp, "their-offer");
  assert.deepEqual(signals.map(([kind]) => kind), ["offer", "answer"]);
  assert.equal(pc.signalingState, "stable");
});

test("an answer completes our offer", async () => {
  const { pc, link } = makeLink();
  pc.onnegotiationneeded();
  await tick();
  await tick();
  await link.handleDescription("answer", "their-answer");
  assert.equal(pc.signalingState, "stable");
});

test("a failed connection restarts ICE", () => {
  const { pc } = makeLink();
  pc.connectionState = "failed";
  pc.onconnectionstatechange();
  assert.equal(pc.restarts, 1);
});

test("data channel: created by the offerer, sends only when open", () => {
  const { pc, link } = makeLink({ createChannel: true });
  assert.equal(pc.channels.length, 1);
  assert.equal(link.send("early"), false);
  const opened = [];
  link.on("channel-open", () => opened.push(true));
  pc.channels[0].open();
  assert.equal(link.send("hello"), true);
  assert.deepEqual(pc.channels[0].sent, ["hello"]);
  assert.deepEqual(opened, [true]);
});

test("close releases the connection and ignores late signals", async () => {
  const { pc, link, signals } = makeLink();
  link.close();
  assert.equal(pc.closed, true);
  assert.equal(pc.onnegotiationneeded, null);
  assert.equal(link.listenerCount("track"), 0);
  await link.handleDescription("offer", "late");
  await link.handleCandidate({ candidate: "c", sdpMid: "0", sdpMLineIndex: 0 });
  assert.deepEqual(signals, []);
});

test("candidateInit keeps the RTCIceCandidateInit fields", () => {
  const candidate = { toJSON: () => ({ candidate: "c", sdpMid: "0", sdpMLineIndex: 0, usernameFragment: "u" }) };
  assert.deepEqual(candidateInit(candidate), { candidate: "c", sdpMid: "0", sdpMLineIndex: 0, usernameFragment: "u" });
  assert.deepEqual(candidateInit({ candidate: "" }), { candidate: "", sdpMid: null, sdpMLineIndex: null });
});

test("repair rolls a pending offer back and makes it again, once", async () => {
  const { pc, link, signals } = makeLink();
  pc.onnegotiationneeded();
  await tick();
  await tick();
  const cut = pc.localDescription.sdp;
  await link.repair();
  await tick();
  await tick();
  assert.equal(pc.rollbacks, 1);
  assert.equal(pc.signalingState, "have-local-offer");
  assert.deepEqual(signals.map(([kind]) => kind), ["offer", "offer"]);
  assert.notEqual(signals[1][1].sdp, cut);
});

test("repair restarts ICE on a broken path and leaves a sound one alone", async () => {
  const { pc, link, signals } = makeLink();
  await link.repair();
  assert.equal(pc.restarts, 0);
  assert.deepEqual(signals, []);
  pc.connectionState = "failed";
  await link.repair();
  await tick();
  await tick();
  assert.equal(pc.restarts, 1);
  assert.equal(pc.rollbacks, 0);
  assert.deepEqual(signals.map(([kind]) => kind), ["offer"]);
});

test("a peer that sends description objects gets its answer as one", async () => {
  const { pc, link, signals } = makeLink();
  await link.handleDescription("offer", { type: "offer", sdp: "remote-offer" });
  assert.equal(pc.remoteDescription.sdp, "remote-offer");
  assert.deepEqual(signals, [["answer", { sdp: { type: "answer", sdp: pc.localDescription.sdp } }]]);
});
