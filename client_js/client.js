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
    { localStream = null, requestTimeout = 10000, rtcConfig = {}, RTCPeerConnection = globalThis.RTCPeerConnection } = {},
  ) {
    super();
    this.rtcConfig = rtcConfig;
    this.localStream = localStream;
    this.requestTimeout = requestTimeout;
    this.RTCPeerConnection = RTCPeerConnection;
    this.iceServers = [];
    this.rooms = new Map(); // room -> metadata, to rejoin after a reconnect
    this.peerRooms = new Map(); // remote peerId -> Set of rooms shared with it
    this.links = new Map(); // linkKey -> PeerLink
    this.published = new Map(); // streamId -> {stream, room}
    this.playing = new Map(); // streamId -> room it belongs to (or null)
    this.everConnected = false;
    this.kicked = false;
    this.selfId = null;
    this.closed = false;
    this.socket = socket;
    this.#listen();
  }

  // The server names peers (in a cluster, after the node that holds them): the id comes with
  // every join ack and changes when the socket reconnects.
  get peerId() {
    return this.selfId ?? null;
  }

  // Rooms

  async join(room, metadata = {}) {
    const reply = await this.#request("join", { room, metadata });
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
    this.rooms.delete(room);
    for (const [peerId, rooms] of this.peerRooms) {
      if (rooms.delete(room)) this.#peerGone(room, peerId, "left");
    }
    // The server ended what we published or played in that room: so do we.
    for (const [streamId, published] of this.published) if (published.room === room) this.#forgetStream(streamId);
    for (const [streamId, playedRoom] of this.playing) if (playedRoom === room) this.#forgetStream(streamId);
    return reply;
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
    const payload = { streamId };
    if (room) payload.room = room;
    // No maxViewers: this client opens a connection per viewer, so it serves any number.
    const reply = await this.#request("publish", payload);
    this.iceServers = reply.iceServers ?? this.iceServers;
    this.published.set(streamId, { stream, room });
    return reply;
  }

  async play(streamId) {
    // Known before the reply: the publisher's offer may arrive first.
    this.playing.set(streamId, null);
    try {
      const reply = await this.#request("play", { streamId });
      this.iceServers = reply.iceServers ?? this.iceServers;
      if (this.playing.has(streamId)) this.playing.set(streamId, reply.room ?? null);
      return reply;
    } catch (error) {
      this.playing.delete(streamId);
      throw error;
    }
  }

  async stop(streamId) {
    this.#forgetStream(streamId);
    return this.#request("stop", { streamId });
  }

  #forgetStream(streamId) {
    this.published.delete(streamId);
    this.playing.delete(streamId);
    this.#closeStreamLinks(streamId);
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
    this.socket.removeAllListeners();
    this.socket.disconnect();
    this.removeAllListeners();
  }

  // Internals

  async #request(event, payload) {
    const reply = await this.socket.timeout(this.requestTimeout).emitWithAck(event, payload);
    if (!reply.ok) throw new SignalingError(reply.error);
    return reply;
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
    socket.on("ice-servers", ({ iceServers }) => {
      // Fresh TURN credentials before the old ones expire: used for ICE restarts and new peers.
      this.iceServers = iceServers;
      for (const link of this.links.values()) {
        try {
          link.pc.setConfiguration?.({ ...this.rtcConfig, iceServers });
        } catch (error) {
          this.emit("error", { code: "webrtc_error", message: String(error) });
        }
      }
    });
    socket.on("kicked", ({ reason }) => {
      // An operator removed us: do not come back by ourselves.
      this.kicked = true;
      this.emit("kicked", { reason });
    });
    socket.on("peer-joined", ({ room, peerId, metadata }) => {
      this.#sharedRooms(peerId).add(room);
      this.emit("peer-joined", { room, peerId, metadata });
      // The peer that was there first makes the offer, as Ant Media's P2P calls expect too.
      this.#meshLink(peerId, { offer: true });
    });
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

  async #onConnect() {
    if (!this.everConnected) {
      this.everConnected = true;
      this.emit("connected");
      return;
    }
    // A new socket is a new peer to the server: join, publish and play again, each on its own,
    // so one refusal (a stream not back yet) does not keep the others from coming back.
    const again = [
      ...[...this.rooms].map(([room, metadata]) => () => this.join(room, metadata)),
      ...[...this.published].map(([streamId, { stream, room }]) => async () => {
        try {
          await this.publish(streamId, stream, { room });
        } catch (error) {
          this.#forgetStream(streamId);
          throw error;
        }
      }),
      ...[...this.playing.keys()].map((streamId) => async () => {
        try {
          await this.#request("play", { streamId });
        } catch (error) {
          this.#forgetStream(streamId);
          this.emit("stream-ended", { streamId, reason: "unavailable" });
          throw error;
        }
      }),
    ];
    for (const step of again) {
      try {
        await step();
      } catch (error) {
        this.emit("error", error instanceof SignalingError ? { code: error.code, message: error.message } : { code: "rejoin_failed", message: String(error) });
      }
    }
    this.emit("reconnected", { peerId: this.peerId });
  }

  #onDisconnect(reason) {
    this.selfId = null;
    // The server forgets us with the socket: every connection is rebuilt after reconnecting.
    for (const [peerId, rooms] of this.peerRooms) {
      for (const room of rooms) this.emit("peer-left", { room, peerId, reason: "reconnecting" });
      this.#closeLink(linkKey(peerId));
    }
    this.peerRooms.clear();
    for (const key of [...this.links.keys()]) this.#closeLink(key);
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
        if (!this.playing.has(route.streamId)) return;
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
      signal: (kind, body) => {
        this.socket.emit(kind, { target: peerId, ...route, ...body });
      },
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
