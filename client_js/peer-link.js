// One RTCPeerConnection to one remote peer, negotiated with the "perfect negotiation" pattern
// (https://w3c.github.io/webrtc-pc/#perfect-negotiation-example): either side may (re)negotiate at
// any time; when both offer at once, the impolite side ignores the other's offer and the polite
// side rolls its own back. Candidates that arrive before the remote description are queued.
//
// No browser globals are used: the peer connection and the signal sender are injected, so the
// negotiation decisions are unit-tested in Node with fakes.
import { Emitter } from "./emitter.js";

// Roles must be complementary on both ends without talking about it: compare the peer ids.
export function isPolite(localId, remoteId) {
  return localId < remoteId;
}

export class PeerLink extends Emitter {
  // pc: an RTCPeerConnection; signal(kind, body): sends "offer" | "answer" | "ice-candidate".
  constructor({ pc, polite, signal, createChannel = false, channelLabel = "data" }) {
    super();
    this.pc = pc;
    this.polite = polite;
    this.signal = signal;
    this.channel = null;
    this.closed = false;
    this.makingOffer = false;
    this.ignoreOffer = false;
    this.settingRemoteAnswer = false;
    // Peers written for the classic relay send the description object itself and can read
    // nothing else: once one arrives so, ours go out so too.
    this.descriptionsAsObjects = false;
    this.pendingCandidates = [];

    pc.onnegotiationneeded = () => this.#negotiate();
    pc.onicecandidate = ({ candidate }) => {
      this.signal("ice-candidate", { candidate: candidate ? candidateInit(candidate) : null });
    };
    pc.ontrack = ({ track, streams }) => {
      this.emit("track", { track, streams });
      track.addEventListener?.("ended", () => this.emit("track-removed", { track }));
      streams[0]?.addEventListener?.("removetrack", (event) => {
        if (event.track === track) this.emit("track-removed", { track });
      });
    };
    pc.onconnectionstatechange = () => {
      this.emit("connection-state", pc.connectionState);
      // A path that broke (network change, NAT rebinding) is repaired with an ICE restart,
      // which renegotiates through onnegotiationneeded.
      if (pc.connectionState === "failed") pc.restartIce?.();
    };
    pc.ondatachannel = ({ channel }) => this.#adoptChannel(channel);
    if (createChannel) this.#adoptChannel(pc.createDataChannel(channelLabel, { ordered: true }));
  }

  async #negotiate() {
    // One offer at a time: browsers do not fire negotiationneeded while one is being made, but
    // after repair()'s rollback the event may race the explicit renegotiation.
    if (this.closed || this.makingOffer) return;
    try {
      this.makingOffer = true;
      await this.pc.setLocalDescription();
      if (this.closed) return;
      this.#sendDescription();
    } catch (error) {
      this.emit("error", error);
    } finally {
      this.makingOffer = false;
    }
  }

  // After the signaling server lost the messages in flight (it restarted): an offer we sent may
  // never have arrived, so it is rolled back and made again, and a broken path, whose ICE restart
  // offer may have been lost too, is restarted.
  async repair() {
    if (this.closed) return;
    const { connectionState } = this.pc;
    if (connectionState === "failed" || connectionState === "disconnected") this.pc.restartIce?.();
    if (this.pc.signalingState !== "have-local-offer" || this.makingOffer) return;
    try {
      await this.pc.setLocalDescription({ type: "rollback" });
    } catch (error) {
      this.emit("error", error);
      return;
    }
    await this.#negotiate();
  }

  #sendDescription() {
    const { type, sdp } = this.pc.localDescription;
    this.signal(type, { sdp: this.descriptionsAsObjects ? { type, sdp } : sdp });
  }

  // Called with each description the remote peer sent: its SDP text, or the description
  // object (RTCSessionDescriptionInit) a classic-relay client sends.
  async handleDescription(type, description) {
    if (this.closed) return;
    const asObject = description !== null && typeof description === "object";
    if (asObject) this.descriptionsAsObjects = true;
    const sdp = asObject ? description.sdp : description;
    const readyForOffer =
      !this.makingOffer && (this.pc.signalingState === "stable" || this.settingRemoteAnswer);
    const collision = type === "offer" && !readyForOffer;
    this.ignoreOffer = !this.polite && collision;
    if (this.ignoreOffer) return;
    try {
      this.settingRemoteAnswer = type === "answer";
      await this.pc.setRemoteDescription({ type, sdp }); // rolls back our own offer if needed
      this.settingRemoteAnswer = false;
      await this.#flushCandidates();
      if (type === "offer") {
        this.emit("offer-accepted");
        await this.pc.setLocalDescription();
        if (this.closed) return;
        this.#sendDescription();
      }
    } catch (error) {
      this.settingRemoteAnswer = false;
      this.emit("error", error);
    }
  }

  // Called with each candidate the remote peer sent; null is the end of candidates.
  async handleCandidate(candidate) {
    if (this.closed) return;
    if (!this.pc.remoteDescription) {
      this.pendingCandidates.push(candidate);
      return;
    }
    await this.#addCandidate(candidate);
  }

  async #flushCandidates() {
    const queued = this.pendingCandidates.splice(0);
    for (const candidate of queued) await this.#addCandidate(candidate);
  }

  async #addCandidate(candidate) {
    try {
      await this.pc.addIceCandidate(candidate ?? undefined);
    } catch (error) {
      // Candidates for an offer we ignored are expected to fail.
      if (!this.ignoreOffer) this.emit("error", error);
    }
  }

  #adoptChannel(channel) {
    // The SDKs we interoperate with may open their own channel; the latest open one is used.
    channel.binaryType = "arraybuffer";
    channel.onopen = () => {
      this.channel = channel;
      this.emit("channel-open");
    };
    channel.onclose = () => {
      if (this.channel === channel) this.channel = null;
      this.emit("channel-close");
    };
    channel.onmessage = ({ data }) => this.emit("message", data);
    if (channel.readyState === "open") channel.onopen();
  }

  send(data) {
    if (!this.channel || this.channel.readyState !== "open") return false;
    this.channel.send(data);
    return true;
  }

  close() {
    if (this.closed) return;
    this.closed = true;
    for (const name of ["onnegotiationneeded", "onicecandidate", "ontrack", "onconnectionstatechange", "ondatachannel"]) {
      this.pc[name] = null;
    }
    if (this.channel) {
      this.channel.onopen = this.channel.onclose = this.channel.onmessage = null;
    }
    this.pc.close();
    this.emit("closed");
    this.removeAllListeners();
  }
}

export function candidateInit(candidate) {
  const init = typeof candidate.toJSON === "function" ? candidate.toJSON() : { ...candidate };
  const body = {
    candidate: init.candidate ?? "",
    sdpMid: init.sdpMid ?? null,
    sdpMLineIndex: init.sdpMLineIndex ?? null,
  };
  if (init.usernameFragment) body.usernameFragment = init.usernameFragment;
  return body;
}
