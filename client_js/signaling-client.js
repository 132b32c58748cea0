// Browser client for the signaling server: "join room X" becomes a working WebRTC mesh, and
// publish/play gives one-to-many streams with one connection per viewer.
//
//   import { connect, getLocalMedia } from "/client/signaling-client.js";
//   const client = connect(location.origin, { localStream: await getLocalMedia() });
//   client.on("track", ({ peerId, track, stream }) => ...);
//   await client.join("lobby", { name: "Ada" });
//
// client.peerId: this client's id, as the server gave it in the last join ack.
// Events: connected, disconnected {reason}, reconnected {peerId}, joined {room, peerId, peers},
// peer-joined {room, peerId, metadata}, peer-left {room, peerId, reason},
// track {peerId, streamId, track, stream}, track-removed {peerId, streamId, track},
// message {peerId, data}, channel-open {peerId}, channel-close {peerId},
// connection-state {peerId, streamId, state}, viewer-joined {streamId, viewerId},
// viewer-left {streamId, viewerId, reason}, stream-ended {streamId, reason},
// stream-published / stream-unpublished {room, streamId, peerId}, peer-message {...},
// kicked {reason} (an operator removed this client; it does not reconnect),
// error {code, message, fields?}: the server's error codes, plus unreachable, camera_denied,
// no_camera, media_error, webrtc_error and rejoin_failed from the client itself.
import { io } from "./node_modules/socket.io-client/dist/socket.io.esm.min.js";
import { SignalingClient, SignalingError } from "./client.js";

export { SignalingClient, SignalingError };

// options: localStream, requestTimeout, and auth ({token}) when the server requires JWTs.
export function connect(url, { auth, ...options } = {}) {
  const socket = io(url, { transports: ["websocket"], reconnectionDelayMax: 2000, auth });
  return new SignalingClient(socket, options);
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
