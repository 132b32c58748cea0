// The client's logic, independent of how the socket is made: see signaling-client.js for the
// browser entry point and the list of events.
import { Emitter } from "./emitter.js";
import { PeerLink, isPolite } from "./peer-link.js";
import { linkKey, routeOf } from "./protocol.js";

export class SignalingError extends Error {
  constructor({ code, message, fields }) {
    super(message);
    this.code = code;
    this.fields = fields;
  }
}

export class SignalingClient extends Emitter {
  // socket: a socket.io-client Socket (signaling-client.js makes one; tests pass a fake).
  // rtcConfig: extra RTCPeerConnection settings, e.g. {iceTransportPolicy: "relay"} to force TURN.
  constructor(
    socket,
    {
      localStream = null,
      requestTimeout = 10000,
      resumeRetryDelay = 1000,
      rtcConfig = {},
      RTCPeerConnection = globalThis.RTCPeerConnection,
    } = {},
  ) {
    super();
    this.resumeRetryDelay = resumeRetryDelay;
    this.rtcConfig = rtcConfig;
    this.localStream = localStream;
    this.requestTimeout = requestTimeout;
    this.RTCPeerConnection = RTCPeerConnection;
    this.iceServers = [];
    this.rooms = new Map(); // room -> metadata, to rejoin after a reconnect
    this.peerRooms = new Map(); // remote peerId -> Set of rooms shared with it
    this.links = new Map(); // linkKey -> PeerLink
    this.published = new Map(); // streamId -> {stream, room}
    this.playing = new Map(); // streamId -> {room (or null), publisher (or null until known)}
    this.everConnected = false;
    this.kicked = false;
    this.selfId = null;
    this.signalingLive = false; // connected, and the session is ours on this connection
    this.closed = false;
    this.socket = socket;
    this.#listen();
  }

  // Signaling state, private. A session outlives its connection for a grace period, so a drop
  // is not a departure: the links stay up and what they signal waits in #outbox.
  #relaying = false; // relays may go straight to the socket (they may before requests may)
  #outbox = []; // {link, event, payload}: relays made while signaling was down, in order
  #waiting = []; // {resolve, reject}: requests made while signaling was down
  #session = null; // {peerId, secret, grace}: what a reconnect resumes (the secret stays in here)
  #held = false; // #session belongs to a lost connection and is not settled on this one yet
  #fresh = null; // this connection's own session, adopted if the resume is refused
  #epoch = 0; // bumped by every connect and disconnect: work started on a dead connection stops

  // The server names peers (in a cluster, after the node that holds them): the id comes with the
  // `session` event after the first connect (and with every join ack), survives reconnects that
  // resume the session, and changes only when a resume is refused.
  get peerId() {
    return this.selfId ?? null;
  }

  // Rooms

  async join(room, metadata = {}) {
    if (!this.signalingLive) await this.#whenLive();
    return this.#join(room, metadata);
  }

  async #join(room, metadata) {
    const reply = await this.#ask("join", { room, metadata });
    this.selfId = reply.peerId;
    this.rooms.set(room, metadata);
    this.iceServers = reply.iceServers;
    this.emit("joined", { room, peerId: reply.peerId, peers: reply.peers });
    // Peers already in the room offer to us; we wait for their offers.
    for (const peer of reply.peers) {
      this.#sharedRooms(peer.peerId).add(room);
      this.emit("peer-joined", { room, peerId: peer.peerId, metadata: peer.metadata });
    }
    return reply;
  }

  async leave(room) {
    const reply = await this.#request("leave", { room });
    this.#roomGone(room, "left");
    return reply;
  }

  // A room we are no longer in: its peers leave us, and the server ended what we published or
  // played in it, so do we. announce: tell the app about played streams (it did not ask for this).
  #roomGone(room, reason, { announce = false } = {}) {
    this.rooms.delete(room);
    for (const [peerId, rooms] of this.peerRooms) {
      if (rooms.delete(room)) this.#peerGone(room, peerId, reason);
    }
    for (const [streamId, published] of this.published) if (published.room === room) this.#forgetStream(streamId);
    for (const [streamId, played] of this.playing) {
      if (played.room === room) announce ? this.#streamLost(streamId) : this.#forgetStream(streamId);
    }
  }

  // Media

  setLocalStream(stream) {
    const previous = this.localStream;
    this.localStream = stream;
    for (const [key, link] of this.links) {
      if (!key.startsWith("peer:")) continue;
      for (const sender of link.pc.getSenders()) if (sender.track) link.pc.removeTrack(sender);
      if (stream) for (const track of stream.getTracks()) link.pc.addTrack(track, stream);
    }
    return previous;
  }

  // Data channels: target is a peerId, or "all" for every peer in the mesh. Returns how many
  // peers it was sent to (a channel that is not open yet is skipped).
  send(target, data) {
    let sent = 0;
    for (const [key, link] of this.links) {
      if (!key.startsWith("peer:")) continue;
      if (target !== "all" && key !== linkKey(target)) continue;
      if (link.send(data)) sent += 1;
    }
    return sent;
  }

  // One to many

  async publish(streamId, stream, { room = null } = {}) {
    if (!this.signalingLive) await this.#whenLive();
    return this.#publish(streamId, stream, room);
  }

  async #publish(streamId, stream, room) {
    const payload = { streamId };
    if (room) payload.room = room;
    // No maxViewers: this client opens a connection per viewer, so it serves any number.
    const reply = await this.#ask("publish", payload);
    this.iceServers = reply.iceServers ?? this.iceServers;
    this.published.set(streamId, { stream, room });
    return reply;
  }

  async play(streamId) {
    if (!this.signalingLive) await this.#whenLive();
    // Known before the reply: the publisher's offer may arrive first.
    this.playing.set(streamId, { room: null, publisher: null });
    try {
      return await this.#replay(streamId);
    } catch (error) {
      this.playing.delete(streamId);
      throw error;
    }
  }

  // Asks to play a stream this.playing holds already.
  async #replay(streamId) {
    const reply = await this.#ask("play", { streamId });
    this.iceServers = reply.iceServers ?? this.iceServers;
    const played = this.playing.get(streamId);
    if (played) {
      played.room = reply.room ?? null;
      played.publisher ??= reply.publisher ?? null;
    }
    return reply;
  }

  async stop(streamId) {
    // The media stops now; the stream itself is ours (and claimed on a resume) until the server
    // hears of the stop, which waits for signaling like any request.
    this.#closeStreamLinks(streamId);
    if (!this.signalingLive) await this.#whenLive();
    this.#forgetStream(streamId);
    return this.#ask("stop", { streamId });
  }

  #forgetStream(streamId) {
    this.published.delete(streamId);
    this.playing.delete(streamId);
    this.#closeStreamLinks(streamId);
  }

  // A stream the server could not give back: viewers are told, as when it ends.
  #streamLost(streamId) {
    const played = this.playing.has(streamId);
    this.#forgetStream(streamId);
    if (played) this.emit("stream-ended", { streamId, reason: "unavailable" });
  }

  // Releases every connection, track and listener, and disconnects.
  close() {
    if (this.closed) return;
    this.closed = true;
    for (const link of this.links.values()) link.close();
    this.links.clear();
    for (const track of this.localStream?.getTracks() ?? []) track.stop();
    for (const { stream } of this.published.values()) for (const track of stream.getTracks()) track.stop();
    this.rooms.clear();
    this.peerRooms.clear();
    this.published.clear();
    this.playing.clear();
    this.#outbox = [];
    const closed = new SignalingError({ code: "closed", message: "the client was closed" });
    for (const waiter of this.#waiting.splice(0)) waiter.reject(closed);
    this.socket.removeAllListeners();
    this.socket.disconnect();
    this.removeAllListeners();
  }

  // Internals

  async #request(event, payload) {
    if (!this.signalingLive) await this.#whenLive();
    return this.#ask(event, payload);
  }

  // Requests made while signaling is down wait for it: socket.io would send them before our
  // resume on the next connection, from a session that is not ours yet. (Callers skip the await
  // when live, so a request made then goes out at once, as before.)
  async #whenLive() {
    while (!this.signalingLive) {
      if (this.closed) throw new SignalingError({ code: "closed", message: "the client was closed" });
      await new Promise((resolve, reject) => this.#waiting.push({ resolve, reject }));
    }
  }

  // Straight to the server: the resume and the rejoin use it before signaling is live.
  async #ask(event, payload) {
    // Never into socket.io's buffer (see #whenLive): a request cannot outlive its connection.
    if (this.socket.connected === false) throw new Error("socket has been disconnected");
    const reply = await this.socket.timeout(this.requestTimeout).emitWithAck(event, payload);
    if (!reply.ok) throw new SignalingError(reply.error);
    return reply;
  }

  // Offers, answers and candidates: sent now, or queued until the session is back.
  #relay(link, event, payload) {
    if (this.#relaying) this.socket.emit(event, payload);
    else this.#outbox.push({ link, event, payload });
  }

  #flushOutbox() {
    this.#relaying = true;
    // A link closed meanwhile (its peer left, it was replaced) has nobody to signal to.
    for (const { link, event, payload } of this.#outbox.splice(0)) if (!link.closed) this.socket.emit(event, payload);
  }

  #goLive() {
    this.signalingLive = true;
    for (const waiter of this.#waiting.splice(0)) waiter.resolve();
  }

  #listen() {
    const socket = this.socket;
    socket.on("connect", () => this.#onConnect());
    socket.on("disconnect", (reason) => this.#onDisconnect(reason));
    socket.on("connect_error", (error) => {
      // A refusal (e.g. unauthorized) carries the server's error; anything else is the network.
      this.emit("error", error.data?.data ?? error.data ?? { code: "unreachable", message: `cannot reach the signaling server: ${error.message}` });
    });
    socket.on("error", (error) => this.emit("error", error));
    socket.on("session", ({ peerId, secret, grace }) => {
      // Sent after every connect. While a lost connection's session waits to be resumed, this
      // one's own is kept aside in case the resume is refused; otherwise it names us.
      this.#fresh = { peerId, secret, grace };
      if (!this.#held) this.#adopt(this.#fresh);
    });
    socket.on("ice-servers", ({ iceServers }) => this.#useIceServers(iceServers));
    socket.on("kicked", ({ reason }) => {
      // An operator removed us, which ended the session: do not come back by ourselves.
      this.kicked = true;
      this.#session = null;
      this.#held = false;
      this.emit("kicked", { reason });
    });
    socket.on("peer-joined", (peer) => this.#onPeerJoined(peer));
    socket.on("peer-left", ({ room, peerId, reason }) => {
      if (this.peerRooms.get(peerId)?.delete(room)) this.#peerGone(room, peerId, reason);
    });
    for (const type of ["offer", "answer"]) {
      socket.on(type, (message) => this.#onDescription(type, message));
    }
    socket.on("ice-candidate", (message) => this.#linkFor(message)?.handleCandidate(message.candidate));
    socket.on("viewer-joined", ({ streamId, viewerId }) => this.#onViewer(streamId, viewerId));
    socket.on("viewer-left", ({ streamId, viewerId, reason }) => {
      this.#closeLink(linkKey(viewerId, streamId));
      this.emit("viewer-left", { streamId, viewerId, reason });
    });
    socket.on("stream-ended", ({ streamId, reason }) => {
      this.playing.delete(streamId);
      this.#closeStreamLinks(streamId);
      this.emit("stream-ended", { streamId, reason });
    });
    for (const event of ["stream-published", "stream-unpublished", "peer-message"]) {
      socket.on(event, (message) => this.emit(event, message));
    }
  }

  #adopt(session) {
    this.#session = session;
    this.selfId = session?.peerId ?? null;
    this.#held = false;
    this.#fresh = null;
  }

  // Fresh TURN credentials (before the old ones expire, or with a resume): used for ICE restarts
  // and new peers.
  #useIceServers(iceServers) {
    this.iceServers = iceServers;
    for (const link of this.links.values()) {
      try {
        link.pc.setConfiguration?.({ ...this.rtcConfig, iceServers });
      } catch (error) {
        this.emit("error", { code: "webrtc_error", message: String(error) });
      }
    }
  }

  #onPeerJoined({ room, peerId, metadata }) {
    const shared = this.#sharedRooms(peerId);
    // Already known there: after a resume the ack names peers whose peer-joined follows it.
    if (shared.has(room)) return;
    shared.add(room);
    this.emit("peer-joined", { room, peerId, metadata });
    // The peer that was there first makes the offer, as Ant Media's P2P calls expect too.
    this.#meshLink(peerId, { offer: true });
  }

  async #onConnect() {
    const epoch = ++this.#epoch;
    if (!this.everConnected) {
      this.everConnected = true;
      this.#flushOutbox();
      this.#goLive();
      this.emit("connected");
      return;
    }
    // With a grace of 0 the server ended the session with its connection: nothing to resume.
    if (this.#held && this.#session.grace !== 0) {
      let reply = null;
      try {
        // First on this connection: the fresh session must hold nothing for the resume to take.
        reply = await this.#ask("resume", { peerId: this.#session.peerId, secret: this.#session.secret, restore: this.#claims() });
      } catch (error) {
        // Refused, or no answer in time: a full rejoin below. (A refusal is routine: the grace
        // passed, the session was ended, or the server does not know `resume`.) But the shared
        // state out of reach for a moment (a cluster's Redis) refuses nothing: the session is
        // still held, so it is asked for again on a new connection.
        if (error?.code === "service_unavailable" && epoch === this.#epoch) return this.#retryResume();
      }
      if (epoch !== this.#epoch) return; // dropped again: the next connect resumes
      if (reply) return this.#onResumed(reply, epoch);
    }
    await this.#rejoin(epoch);
  }

  #retryResume() {
    this.socket.disconnect();
    setTimeout(() => {
      if (!this.closed && !this.kicked) this.socket.connect();
    }, this.resumeRetryDelay);
  }

  // What the session held, as this client knows it: the server rebuilds the session from it if it
  // lost it (it restarted), and ignores it otherwise.
  #claims() {
    const peersIn = (room) => [...this.peerRooms].filter(([, rooms]) => rooms.has(room)).map(([peerId]) => peerId);
    const viewersOf = (streamId) => {
      const prefix = linkKey("", streamId); // "stream:<id>:", then the viewer's id
      return [...this.links.keys()].filter((key) => key.startsWith(prefix)).map((key) => key.slice(prefix.length));
    };
    return {
      rooms: [...this.rooms].map(([room, metadata]) => ({ room, metadata, peers: peersIn(room) })),
      published: [...this.published].map(([streamId, { room }]) => ({ streamId, ...(room ? { room } : {}), viewers: viewersOf(streamId) })),
      // A play whose publisher we never learnt cannot be restored: the server needs to name it.
      playing: [...this.playing]
        .filter(([, { publisher }]) => publisher)
        .map(([streamId, { room, publisher }]) => ({ streamId, ...(room ? { room } : {}), publisher })),
    };
  }

  async #onResumed(reply, epoch) {
    this.#adopt(this.#session); // the same session: the fresh one is discarded by the server
    this.selfId = reply.peerId ?? this.selfId;
    if (reply.iceServers) this.#useIceServers(reply.iceServers);
    // What the server could not give back is gone, for us as for it.
    for (const streamId of reply.lost?.streams ?? []) this.#streamLost(streamId);
    for (const room of reply.lost?.rooms ?? []) this.#roomGone(room, "unavailable", { announce: true });
    // The server restarted: messages in flight then were lost, so negotiations may be cut.
    if (reply.resumed === "restored") await this.#repairLinks();
    if (epoch !== this.#epoch) return;
    this.#flushOutbox();
    for (const { room, peers = [] } of reply.rooms ?? []) {
      if (!this.rooms.has(room)) continue;
      for (const peer of peers) this.#onPeerJoined({ room, ...peer });
    }
    await this.#converge(
      {
        rooms: reply.rooms && new Set(reply.rooms.map(({ room }) => room)),
        published: reply.published && new Set(reply.published),
        playing: reply.playing && new Set(reply.playing),
      },
      epoch,
    );
    if (epoch !== this.#epoch) return;
    this.#goLive();
    this.emit("reconnected", { peerId: this.peerId, resumed: reply.resumed });
  }

  async #repairLinks() {
    await Promise.all(
      [...this.links.values()].map((link) => {
        // An offer still queued is rolled back below: it must never reach the other side, or the
        // answer to it would meet the new offer.
        if (link.pc.signalingState === "have-local-offer") {
          this.#outbox = this.#outbox.filter((entry) => entry.link !== link || entry.event !== "offer");
        }
        return link.repair();
      }),
    );
  }

  // The resume was refused: this connection is a new peer to the server (its own session), so
  // every connection is rebuilt and rooms, streams and plays are asked for again.
  async #rejoin(epoch) {
    if (this.#held) this.#adopt(this.#fresh); // the old session is gone: this connection's is ours
    else if (!this.#session) this.selfId = null; // no session (an older server): join acks name us
    this.#outbox = []; // for links about to close
    for (const [peerId, rooms] of this.peerRooms) {
      for (const room of rooms) this.emit("peer-left", { room, peerId, reason: "reconnecting" });
    }
    this.peerRooms.clear();
    for (const key of [...this.links.keys()]) this.#closeLink(key);
    this.#flushOutbox();
    await this.#converge({ rooms: new Set(), published: new Set(), playing: new Set() }, epoch);
    if (epoch !== this.#epoch) return;
    this.#goLive();
    this.emit("reconnected", { peerId: this.peerId, resumed: false });
  }

  // Brings the server in line with what this client holds, given what the server says the session
  // holds (a field it did not send is left alone). After a refused resume that is everything;
  // after a resume, whatever a drop cut short: a rejoin interrupted by another drop, or a request
  // whose ack was lost with the connection (the app was told it failed, so it is undone).
  // Each step on its own, so one refusal (a stream not back yet) does not keep the others back.
  async #converge(held, epoch) {
    const steps = [];
    if (held.rooms) {
      for (const [room, metadata] of this.rooms) if (!held.rooms.has(room)) steps.push({ run: () => this.#join(room, metadata) });
      for (const room of held.rooms) if (!this.rooms.has(room)) steps.push({ run: () => this.#ask("leave", { room }) });
    }
    if (held.published) {
      for (const [streamId, { stream, room }] of this.published) {
        if (held.published.has(streamId)) continue;
        steps.push({ run: () => this.#publish(streamId, stream, room), failed: () => this.#forgetStream(streamId) });
      }
      for (const streamId of held.published) if (!this.published.has(streamId)) steps.push({ run: () => this.#ask("stop", { streamId }) });
    }
    if (held.playing) {
      for (const streamId of this.playing.keys()) {
        if (held.playing.has(streamId)) continue;
        steps.push({ run: () => this.#replay(streamId), failed: () => this.#streamLost(streamId) });
      }
      for (const streamId of held.playing) if (!this.playing.has(streamId)) steps.push({ run: () => this.#ask("stop", { streamId }) });
    }
    for (const { run, failed } of steps) {
      if (epoch !== this.#epoch) return; // dropped again: the next connect takes over
      try {
        await run();
      } catch (error) {
        if (epoch !== this.#epoch) return; // failed with the connection, not refused
        // The server holds it after all (its ack left it out): nothing to undo.
        if (error.code?.startsWith?.("already_")) continue;
        failed?.();
        this.emit("error", error instanceof SignalingError ? { code: error.code, message: error.message } : { code: "rejoin_failed", message: String(error) });
      }
    }
  }

  #onDisconnect(reason) {
    this.#epoch += 1;
    // The server keeps the session for a grace period and holds what is sent to us meanwhile:
    // every connection and track stays, and nobody has left. Signaling waits for the resume.
    this.#relaying = this.signalingLive = false;
    if (this.#session) this.#held = true;
    this.#fresh = null;
    this.emit("disconnected", { reason });
    // socket.io does not retry after the server closed the connection on purpose; we do.
    if (reason === "io server disconnect" && !this.closed && !this.kicked) this.socket.connect();
  }

  #sharedRooms(peerId) {
    if (!this.peerRooms.has(peerId)) this.peerRooms.set(peerId, new Set());
    return this.peerRooms.get(peerId);
  }

  #peerGone(room, peerId, reason) {
    if (this.peerRooms.get(peerId)?.size === 0) {
      this.peerRooms.delete(peerId);
      this.#closeLink(linkKey(peerId));
    }
    this.emit("peer-left", { room, peerId, reason });
  }

  #onDescription(type, message) {
    let link = this.#linkFor(message);
    if (!link && type === "offer") {
      const route = routeOf(message);
      if (route.streamId) {
        const played = this.playing.get(route.streamId);
        if (!played) return;
        played.publisher = route.peerId; // claimed on a resume: the server needs the publisher
        link = this.#createLink(route, { polite: true, offer: false });
      } else {
        link = this.#meshLink(message.from, { offer: false });
      }
    }
    link?.handleDescription(type, message.sdp);
  }

  #onViewer(streamId, viewerId) {
    const published = this.published.get(streamId);
    this.emit("viewer-joined", { streamId, viewerId });
    if (!published) return;
    const link = this.#createLink({ peerId: viewerId, streamId }, { polite: false, offer: false });
    for (const track of published.stream.getTracks()) link.pc.addTrack(track, published.stream);
  }

  #linkFor(message) {
    const route = routeOf(message);
    return this.links.get(linkKey(route.peerId, route.streamId));
  }

  #meshLink(peerId, { offer }) {
    const existing = this.links.get(linkKey(peerId));
    if (existing) return existing;
    // Before the join ack names us (an offer can overtake it), yield: we are answering anyway.
    const polite = this.peerId ? isPolite(this.peerId, peerId) : true;
    const link = this.#createLink({ peerId, streamId: null }, { polite, offer });
    const addLocalTracks = () => {
      for (const track of this.localStream?.getTracks() ?? []) link.pc.addTrack(track, this.localStream);
    };
    // The offerer sends its tracks in the first offer; the answerer adds them once it has the
    // offer, so they ride on the offered transceivers instead of needing another round.
    if (offer) addLocalTracks();
    else link.once("offer-accepted", addLocalTracks);
    return link;
  }

  #createLink({ peerId, streamId }, { polite, offer }) {
    const key = linkKey(peerId, streamId);
    this.#closeLink(key); // a repeated viewer-joined replaces the old connection, not leaks it
    const pc = new this.RTCPeerConnection({ ...this.rtcConfig, iceServers: this.iceServers });
    const route = streamId ? { streamId } : {};
    const link = new PeerLink({
      pc,
      polite,
      createChannel: offer && !streamId,
      signal: (kind, body) => this.#relay(link, kind, { target: peerId, ...route, ...body }),
    });
    this.links.set(key, link);
    link.on("track", ({ track, streams }) => this.emit("track", { peerId, streamId, track, stream: streams[0] }));
    link.on("track-removed", ({ track }) => this.emit("track-removed", { peerId, streamId, track }));
    link.on("connection-state", (state) => this.emit("connection-state", { peerId, streamId, state }));
    link.on("message", (data) => this.emit("message", { peerId, data }));
    link.on("channel-open", () => this.emit("channel-open", { peerId }));
    link.on("channel-close", () => this.emit("channel-close", { peerId }));
    link.on("error", (error) => this.emit("error", { code: "webrtc_error", message: String(error), peerId }));
    return link;
  }

  #closeLink(key) {
    const link = this.links.get(key);
    if (!link) return;
    this.links.delete(key);
    link.close();
  }

  #closeStreamLinks(streamId) {
    for (const key of [...this.links.keys()]) {
      if (key.startsWith(`stream:${streamId}:`)) this.#closeLink(key);
    }
  }
}
