// Browser client for the signaling server: "join room X" becomes a working WebRTC mesh, and
// publish/play gives one-to-many streams with one connection per viewer.
//
//   import { connect, getLocalMedia } from "/client/signaling-client.js";
//   const client = connect(location.origin, { localStream: await getLocalMedia() });
//   client.on("track", ({ peerId, track, stream }) => ...);
//   await client.join("lobby", { name: "Ada" });
//
// client.peerId: this client's id, from the server's `session` event (before any join); it
// survives reconnects that resume the session. client.signalingLive: signaling is up and ours.
//
// When the signaling connection drops, calls go on: every RTCPeerConnection and track stays,
// signaling is queued, and requests (join, leave, publish, play, stop) wait. On reconnect the
// client resumes its session and sends the queue; nobody sees it leave. Only if the server
// refuses the resume (the grace passed, the server forgot it) does it rebuild: peer-left
// "reconnecting" for every peer, then join, publish and play again as a new peer.
//
// Events: connected, disconnected {reason} (signaling lost; calls go on, the client reconnects),
// reconnected {peerId, resumed} (resumed: "kept" or "restored" when the session came back,
// false after a full rejoin), joined {room, peerId, peers},
// peer-joined {room, peerId, metadata}, peer-left {room, peerId, reason} (reason "unavailable":
// the server lost the room in a restart),
// track {peerId, streamId, track, stream}, track-removed {peerId, streamId, track},
// message {peerId, data}, channel-open {peerId}, channel-close {peerId},
// connection-state {peerId, streamId, state}, viewer-joined {streamId, viewerId},
// viewer-left {streamId, viewerId, reason}, stream-ended {streamId, reason} (also "unavailable"),
// stream-published / stream-unpublished {room, streamId, peerId}, peer-message {...},
// kicked {reason} (an operator removed this client; it does not reconnect),
// error {code, message, fields?}: the server's error codes, plus unreachable, camera_denied,
// no_camera, media_error, webrtc_error and rejoin_failed from the client itself. Requests still
// waiting for signaling when close() is called reject with code "closed".
// socket.io-client's browser build, vendored (vendor/README.md): serving it needs no npm step.
import { io } from "./vendor/socket.io.esm.min.js";
import { SignalingClient, SignalingError } from "./client.js";

export { SignalingClient, SignalingError };

// options: localStream, requestTimeout, and auth ({token}) when the server requires JWTs.
export function connect(url, { auth, ...options } = {}) {
  const socket = io(url, { transports: ["websocket"], reconnectionDelayMax: 2000, auth });
  const client = new SignalingClient(socket, options);
  // A page that goes away says goodbye, which ends its session at once: otherwise the server
  // would hold it for the grace, and the others would see a frozen tile until then. (A page
  // kept in the back/forward cache is not gone.)
  globalThis.addEventListener?.("pagehide", (event) => {
    if (!event.persisted) client.close();
  });
  return client;
}

// Asks for camera and microphone, with a clear error code when the user or browser refuses.
export async function getLocalMedia(constraints = { video: true, audio: true }) {
  try {
    return await navigator.mediaDevices.getUserMedia(constraints);
  } catch (error) {
    const code =
      error.name === "NotAllowedError" ? "camera_denied" : error.name === "NotFoundError" ? "no_camera" : "media_error";
    throw new SignalingError({ code, message: error.message || error.name });
  }
}
