// The broadcast page: ?stream=NAME&role=publish goes live, ?stream=NAME&role=play watches.
import { connect, getLocalMedia } from "/client/signaling-client.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const streamId = params.get("stream");
const role = params.get("role");
const RETRY_MS = 2000;

if (!streamId || !["publish", "play"].includes(role)) {
  $("choose").hidden = false;
  $("stream-input").value = streamId ?? `live-${Math.random().toString(36).slice(2, 8)}`;
  $("choose-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const chosen = event.submitter?.value ?? "play";
    location.search = `?stream=${encodeURIComponent($("stream-input").value)}&role=${chosen}`;
  });
} else {
  $("show").hidden = false;
  (role === "publish" ? publish : watch)();
}

function showBanner(text, { error = false } = {}) {
  $("banner").textContent = text;
  $("banner").classList.toggle("error", error);
  $("banner").hidden = !text;
}

function status(text) {
  $("status").textContent = text;
}

function common(client) {
  window.demo = { client, streamId, role };
  client.on("disconnected", () => {
    if (!client.kicked) showBanner("Connection to the server lost, reconnecting…");
  });
  client.on("kicked", ({ reason }) => {
    showBanner(`Removed by an operator: ${reason}`, { error: true });
    client.close();
  });
  client.on("reconnected", () => showBanner(""));
  client.on("error", (error) => {
    if (error.code === "unreachable") showBanner("Cannot reach the signaling server. Retrying…", { error: true });
  });
  $("copy-link").addEventListener("click", () => {
    const link = `${location.origin}/broadcast?stream=${encodeURIComponent(streamId)}&role=play`;
    navigator.clipboard?.writeText(link).catch(() => {});
    showBanner(`Viewer link: ${link}`);
  });
}

async function publish() {
  $("title").textContent = `Live: ${streamId}`;
  let camera;
  try {
    camera = await getLocalMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: true });
  } catch (error) {
    showBanner(`Camera and microphone are needed to go live: ${error.message}`, { error: true });
    return;
  }
  $("video").srcObject = camera;
  const client = connect(location.origin);
  common(client);
  const viewers = new Map();
  const render = () => {
    $("viewers").replaceChildren(
      ...[...viewers].map(([id, state]) => Object.assign(document.createElement("li"), { textContent: `${id.slice(0, 6)}… ${state}` })),
    );
    status(`${viewers.size} viewer${viewers.size === 1 ? "" : "s"}`);
  };
  client.on("viewer-joined", ({ viewerId }) => {
    viewers.set(viewerId, "connecting");
    render();
  });
  client.on("viewer-left", ({ viewerId }) => {
    viewers.delete(viewerId);
    render();
  });
  client.on("connection-state", ({ peerId, streamId: id, state }) => {
    if (id === streamId && viewers.has(peerId)) {
      viewers.set(peerId, state);
      render();
    }
  });
  $("stop").addEventListener("click", () => {
    client.close();
    location.href = "/broadcast";
  });
  try {
    await client.publish(streamId, camera);
    render();
  } catch (error) {
    showBanner(error.code === "stream_in_use" ? "Someone else is live under this name." : `Could not go live: ${error.message}`, { error: true });
  }
}

async function watch() {
  $("title").textContent = `Watching: ${streamId}`;
  $("side-title").textContent = "Status";
  // Browsers only autoplay muted video without a click: start muted, with controls to unmute.
  $("video").controls = true;
  const client = connect(location.origin);
  common(client);
  let timer = null;
  const tryPlay = async () => {
    timer = null;
    try {
      await client.play(streamId);
      status("connecting");
      showBanner("");
    } catch (error) {
      if (error.code === "no_such_stream") {
        status("waiting");
        showBanner("This stream is not live yet; waiting for it to start…");
        timer = setTimeout(tryPlay, RETRY_MS);
      } else {
        showBanner(`Cannot play: ${error.message}`, { error: true });
      }
    }
  };
  client.on("track", ({ streamId: id, stream }) => {
    if (id === streamId && $("video").srcObject !== stream) $("video").srcObject = stream;
  });
  client.on("connection-state", ({ streamId: id, state }) => {
    if (id === streamId) status(state);
  });
  client.on("stream-ended", () => {
    $("video").srcObject = null;
    status("ended");
    showBanner("The stream ended; waiting for it to start again…");
    timer ??= setTimeout(tryPlay, RETRY_MS);
  });
  $("stop").addEventListener("click", () => {
    clearTimeout(timer);
    client.close();
    location.href = "/broadcast";
  });
  client.once("connected", tryPlay);
}
