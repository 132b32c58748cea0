// Stand-ins for RTCPeerConnection, media and the socket.io socket: enough behaviour to drive the
// negotiation and routing logic in Node, with every call recorded for assertions.
export const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

let descriptions = 0;

export class FakeChannel {
  constructor(label) {
    this.label = label;
    this.readyState = "connecting";
    this.sent = [];
  }
  open() {
    this.readyState = "open";
    this.onopen?.();
  }
  send(data) {
    this.sent.push(data);
  }
}

export class FakePC {
  static instances = [];

  constructor(config) {
    this.config = config;
    this.signalingState = "stable";
    this.connectionState = "new";
    this.localDescription = null;
    this.remoteDescription = null;
    this.added = [];
    this.senders = [];
    this.channels = [];
    this.closed = false;
    this.restarts = 0;
    this.rollbacks = 0;
    FakePC.instances.push(this);
  }

  async setLocalDescription(description) {
    await tick();
    if (description?.type === "rollback") {
      if (this.signalingState !== "have-local-offer") throw new Error(`no offer to roll back in ${this.signalingState}`);
      this.rollbacks += 1;
      this.localDescription = null;
      this.signalingState = "stable";
      return;
    }
    const type = this.signalingState === "have-remote-offer" ? "answer" : "offer";
    this.localDescription = { type, sdp: `${type}-${++descriptions}` };
    this.signalingState = type === "offer" ? "have-local-offer" : "stable";
  }

  async setRemoteDescription(description) {
    await tick();
    if (description.type === "offer") {
      if (this.signalingState === "have-local-offer") this.localDescription = null; // rollback
      this.signalingState = "have-remote-offer";
    } else {
      if (this.signalingState !== "have-local-offer") throw new Error("answer without an offer");
      this.signalingState = "stable";
    }
    this.remoteDescription = description;
  }

  async addIceCandidate(candidate) {
    await tick();
    if (!this.remoteDescription) throw new Error("no remote description");
    this.added.push(candidate);
  }

  addTrack(track, stream) {
    const sender = { track, stream };
    this.senders.push(sender);
    this.#needNegotiation();
    return sender;
  }

  removeTrack(sender) {
    sender.track = null;
    this.#needNegotiation();
  }

  // Like browsers: one event for changes made together, and only in the stable state.
  #needNegotiation() {
    if (this.negotiationPending) return;
    this.negotiationPending = true;
    queueMicrotask(() => {
      this.negotiationPending = false;
      if (this.signalingState === "stable") this.onnegotiationneeded?.();
    });
  }

  getSenders() {
    return this.senders;
  }

  createDataChannel(label) {
    const channel = new FakeChannel(label);
    this.channels.push(channel);
    return channel;
  }

  setConfiguration(config) {
    this.configured = config;
  }

  restartIce() {
    this.restarts += 1;
    this.#needNegotiation();
  }

  close() {
    this.closed = true;
    this.signalingState = "closed";
  }
}

export class FakeTrack {
  constructor(kind) {
    this.kind = kind;
    this.stopped = false;
  }
  stop() {
    this.stopped = true;
  }
}

export class FakeStream {
  constructor(tracks = [new FakeTrack("audio"), new FakeTrack("video")]) {
    this.tracks = tracks;
  }
  getTracks() {
    return this.tracks;
  }
}

// Behaves like a socket.io-client Socket where it matters here: `connected`, emits made while
// disconnected are buffered and sent on the next connect BEFORE the connect event (the hazard the
// client must avoid), and acks come from `replies[event](payload)` (a value or a promise).
export class FakeSocket {
  constructor(id = "me") {
    this.id = id;
    this.handlers = new Map();
    this.sent = [];
    this.sendBuffer = [];
    this.replies = {};
    this.connected = false;
    this.disconnected = false;
    this.connectCalls = 0;
  }
  on(event, handler) {
    if (!this.handlers.has(event)) this.handlers.set(event, []);
    this.handlers.get(event).push(handler);
  }
  emit(event, payload) {
    (this.connected ? this.sent : this.sendBuffer).push([event, payload]);
  }
  timeout() {
    return {
      emitWithAck: async (event, payload) => {
        this.emit(event, payload);
        return (await this.replies[event]?.(payload)) ?? { ok: true };
      },
    };
  }
  // The server sending an event to this client.
  deliver(event, ...args) {
    for (const handler of [...(this.handlers.get(event) ?? [])]) handler(...args);
  }
  // The connection comes up: buffered emits go first, then `connect`, then the server's `session`
  // (or the session first: socket.io replays events that came before the connect packet).
  open(session = null, { sessionFirst = false } = {}) {
    this.connected = true;
    this.sent.push(...this.sendBuffer.splice(0));
    if (session && sessionFirst) this.deliver("session", session);
    this.deliver("connect");
    if (session && !sessionFirst) this.deliver("session", session);
  }
  // The connection is lost (network, server restart or drain).
  drop(reason = "transport close") {
    this.connected = false;
    this.deliver("disconnect", reason);
  }
  removeAllListeners() {
    this.handlers.clear();
  }
  disconnect() {
    this.disconnected = true;
    this.connected = false;
  }
  connect() {
    this.connectCalls += 1;
  }
  sentOf(event) {
    return this.sent.filter(([name]) => name === event).map(([, payload]) => payload);
  }
}

// A promise to settle from the test: a reply the server has not sent yet.
export function deferred() {
  let resolve;
  const promise = new Promise((done) => {
    resolve = done;
  });
  return { promise, resolve };
}
