// The room page: a mesh call with chat, built on the client library alone.
import { connect, getLocalMedia } from "/client/signaling-client.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const room = params.get("room");
const names = new Map(); // peerId -> display name

if (!room) {
  $("lobby").hidden = false;
  $("room-input").value = `room-${Math.random().toString(36).slice(2, 8)}`;
  $("lobby-form").addEventListener("submit", (event) => {
    event.preventDefault();
    location.search = `?room=${encodeURIComponent($("room-input").value)}`;
  });
} else {
  start(room);
}

function showBanner(text, { error = false } = {}) {
  const banner = $("banner");
  banner.textContent = text;
  banner.classList.toggle("error", error);
  banner.hidden = !text;
}

function addChat(who, text, { system = false } = {}) {
  const item = document.createElement("li");
  if (system) {
    item.className = "system";
    item.textContent = text;
  } else {
    const name = document.createElement("span");
    name.className = "who";
    name.textContent = who;
    item.append(name, document.createTextNode(text));
  }
  $("chat-log").append(item);
  item.scrollIntoView({ block: "end" });
}

function tileFor(peerId) {
  let tile = document.querySelector(`.tile[data-peer="${CSS.escape(peerId)}"]`);
  if (!tile) {
    tile = document.createElement("div");
    tile.className = "tile remote";
    tile.dataset.peer = peerId;
    const video = document.createElement("video");
    video.autoplay = true;
    video.playsInline = true;
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = names.get(peerId) ?? "Guest";
    const state = document.createElement("span");
    state.className = "state";
    state.textContent = "connecting";
    tile.append(video, label, state);
    $("tiles").append(tile);
  }
  return tile;
}

async function start(roomName) {
  $("call").hidden = false;
  $("room-name").textContent = roomName;
  document.title = `${roomName} · Video room`;
  const myName = params.get("name") || `Guest ${Math.floor(Math.random() * 900 + 100)}`;

  let localStream = null;
  try {
    // ?quality=low saves bandwidth and CPU on phones and in big rooms.
    const video = params.get("quality") === "low"
      ? { width: { ideal: 320 }, height: { ideal: 240 }, frameRate: { ideal: 15 } }
      : { width: { ideal: 640 }, height: { ideal: 480 } };
    localStream = await getLocalMedia({ video, audio: true });
    $("local-video").srcObject = localStream;
  } catch (error) {
    const why = error.code === "camera_denied" ? "Camera and microphone are blocked for this site" : "No camera or microphone could be opened";
    // A banner of its own: connection messages come and go, this one stays true.
    $("media-banner").textContent = `${why}: you can still watch and chat. (${error.message})`;
    $("media-banner").hidden = false;
    $("toggle-mic").disabled = $("toggle-camera").disabled = true;
  }

  // ?relay=1 sends all media through the TURN server: a quick way to check that TURN works.
  const rtcConfig = params.get("relay") ? { iceTransportPolicy: "relay" } : {};
  const client = connect(location.origin, { localStream, rtcConfig });
  window.demo = { client, roomName };

  // Losing the server does not end the call: the videos and chat go on over the peer
  // connections, so the page only says it is reconnecting, and keeps every tile.
  const signalingNotice = (lost) => {
    $("signaling-notice").hidden = !lost;
  };
  client.on("connected", () => showBanner(""));
  client.on("disconnected", () => signalingNotice(!client.kicked));
  client.on("kicked", ({ reason }) => {
    signalingNotice(false);
    showBanner(`You were removed from the room: ${reason}`, { error: true });
    client.close(); // also releases the camera
  });
  client.on("reconnected", () => {
    // After a refused resume the tiles were rebuilt through peer-left / peer-joined.
    signalingNotice(false);
    showBanner("");
    addChat("", "Reconnected.", { system: true });
  });
  client.on("error", (error) => {
    if (error.code === "unreachable") showBanner("Cannot reach the signaling server. Retrying…", { error: true });
    else if (error.code === "room_full") showBanner("This room is full.", { error: true });
    else console.warn("signaling error", error);
  });
  client.on("peer-joined", ({ peerId, metadata }) => {
    names.set(peerId, metadata?.name ?? "Guest");
    tileFor(peerId);
    addChat("", `${names.get(peerId)} joined`, { system: true });
  });
  client.on("peer-left", ({ peerId, reason }) => {
    document.querySelector(`.tile[data-peer="${CSS.escape(peerId)}"]`)?.remove();
    if (reason !== "reconnecting") addChat("", `${names.get(peerId) ?? "Guest"} left`, { system: true });
  });
  client.on("track", ({ peerId, stream, streamId }) => {
    if (streamId) return;
    const video = tileFor(peerId).querySelector("video");
    if (video.srcObject !== stream) video.srcObject = stream;
  });
  client.on("connection-state", ({ peerId, streamId, state }) => {
    if (streamId) return;
    const badge = tileFor(peerId).querySelector(".state");
    badge.textContent = state;
    badge.className = `state ${state}`;
  });
  client.on("message", ({ peerId, data }) => {
    try {
      const message = JSON.parse(data);
      if (message.type === "chat") addChat(names.get(peerId) ?? "Guest", String(message.text));
    } catch {
      // Not ours: another app's data on the channel.
    }
  });

  $("chat-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("chat-input").value.trim();
    if (!text) return;
    const sent = client.send("all", JSON.stringify({ type: "chat", text }));
    addChat("You", sent ? text : `${text} (nobody connected yet)`);
    $("chat-input").value = "";
  });
  $("toggle-mic").addEventListener("click", (event) => toggle(localStream?.getAudioTracks(), event.target, "Mute", "Unmute"));
  $("toggle-camera").addEventListener("click", (event) => toggle(localStream?.getVideoTracks(), event.target, "Camera off", "Camera on"));
  $("copy-link").addEventListener("click", async () => {
    await navigator.clipboard?.writeText(location.href).catch(() => {});
    addChat("", `Share this link: ${location.href}`, { system: true });
  });
  $("leave").addEventListener("click", () => {
    client.close();
    location.href = "/";
  });

  // Joined once the socket is up, so a page opened while the server is down joins when it is back.
  client.once("connected", async () => {
    try {
      await client.join(roomName, { name: myName });
      addChat("", `You joined ${roomName} as ${myName}`, { system: true });
    } catch (error) {
      showBanner(error.code === "room_full" ? "This room is full." : `Could not join: ${error.message}`, { error: true });
    }
  });
}

function toggle(tracks, button, onLabel, offLabel) {
  if (!tracks?.length) return;
  const enabled = !tracks[0].enabled;
  for (const track of tracks) track.enabled = enabled;
  button.textContent = enabled ? onLabel : offLabel;
  button.classList.toggle("off", !enabled);
}
