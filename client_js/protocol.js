// How server messages map onto this client's peer connections: pure functions, unit-tested.

// A mesh connection is per remote peer; a stream connection is per (stream, remote peer), since a
// publisher holds one connection for each of its viewers.
export function linkKey(peerId, streamId = null) {
  return streamId ? `stream:${streamId}:${peerId}` : `peer:${peerId}`;
}

// Which connection a relayed offer, answer or candidate belongs to.
export function routeOf(message) {
  return { peerId: message.from, streamId: message.streamId ?? null };
}
