// Watch an avatar published into a Janus VideoRoom (docs/api.md, "Fan-out through Janus"):
// a subscriber over Janus's HTTP API (janus.transport.http), as janus.js would do it, in the
// few calls a viewer needs. The audience needs no token of the avatar server: only Janus.

const POLL_EVENTS = 10;
const KEEPALIVE_MS = 25000; // Janus drops a session after 60 s without a request
const ANSWER_TIMEOUT_MS = 10000;

const transaction = () => Math.random().toString(36).slice(2, 14);

async function post(url, body) {
  // A text body: a "simple" cross-origin request, no preflight.
  const response = await fetch(url, {
    method: 'POST',
    body: JSON.stringify({ ...body, transaction: body.transaction ?? transaction() }),
  });
  if (!response.ok) throw new Error(`Janus answered HTTP ${response.status}`);
  const reply = await response.json();
  if (reply.janus === 'error') {
    throw new Error(`Janus: ${reply.error?.code} ${reply.error?.reason}`);
  }
  return reply;
}

/** A Janus base URL from a link: http(s) only, without query or fragment. */
export function janusBase(text) {
  const url = new URL(text);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new Error('the Janus URL must be http:// or https://');
  }
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

/**
 * Subscribe to `feed` in `room` through the Janus at `base`. Calls `onTrack(track)` for each
 * received track and `onEnd(reason)` once if the stream ends. Resolves to
 * { pc, stop } once Janus has started sending.
 */
export async function subscribe({ base, room, feed, iceServers = [], onTrack, onEnd }) {
  const session = (await post(base, { janus: 'create' })).data.id;
  const sessionUrl = `${base}/${session}`;
  let closed = false;
  let pc = null;
  const waiters = new Map(); // transaction -> resolve, for asynchronous answers
  const early = []; // candidates Janus trickled before the offer was set

  const end = (reason) => {
    if (closed) return;
    closed = true;
    clearInterval(keepalive);
    pc?.close();
    onEnd?.(reason);
  };
  const addCandidate = (candidate) => {
    if (!candidate || candidate.completed) return;
    if (!pc?.remoteDescription) early.push(candidate);
    else pc.addIceCandidate(candidate).catch(() => {});
  };
  const poll = async () => {
    while (!closed) {
      let events;
      try {
        const response = await fetch(`${sessionUrl}?maxev=${POLL_EVENTS}&rid=${Date.now()}`);
        events = await response.json();
      } catch {
        end('Janus is unreachable.');
        return;
      }
      for (const event of Array.isArray(events) ? events : [events]) {
        if (event.janus === 'trickle') addCandidate(event.candidate);
        else if (event.janus === 'hangup' || event.janus === 'detached') end('The stream ended.');
        else if (event.janus === 'event' && waiters.has(event.transaction)) {
          waiters.get(event.transaction)(event);
          waiters.delete(event.transaction);
        }
      }
    }
  };
  const message = async (body, jsep) => {
    const id = transaction();
    const answered = new Promise((resolve, reject) => {
      waiters.set(id, resolve);
      setTimeout(() => reject(new Error(`Janus did not answer '${body.request}'`)),
        ANSWER_TIMEOUT_MS);
    });
    const reply = await post(handleUrl, { janus: 'message', body, jsep, transaction: id });
    const event = reply.janus === 'success' ? reply : await answered;
    const data = event.plugindata?.data ?? {};
    if (data.error) throw new Error(`Janus: ${data.error}`);
    return event;
  };
  const keepalive = setInterval(() => {
    post(sessionUrl, { janus: 'keepalive' }).catch(() => {});
  }, KEEPALIVE_MS);

  let handleUrl;
  try {
    const handle = (await post(sessionUrl, {
      janus: 'attach', plugin: 'janus.plugin.videoroom',
    })).data.id;
    handleUrl = `${sessionUrl}/${handle}`;
    poll();
    const joined = await message({
      request: 'join', ptype: 'subscriber', room, streams: [{ feed }],
    });
    if (joined.jsep?.type !== 'offer') throw new Error('Janus sent no offer');
    pc = new RTCPeerConnection({ iceServers });
    pc.addEventListener('track', (event) => onTrack?.(event.track, event.receiver));
    pc.addEventListener('connectionstatechange', () => {
      if (pc.connectionState === 'failed') end('The connection to Janus failed.');
    });
    await pc.setRemoteDescription(joined.jsep);
    for (const candidate of early.splice(0)) pc.addIceCandidate(candidate).catch(() => {});
    await pc.setLocalDescription(await pc.createAnswer());
    pc.addEventListener('icecandidate', (event) => {
      post(handleUrl, { janus: 'trickle', candidate: event.candidate ?? { completed: true } })
        .catch(() => {});
    });
    await message({ request: 'start', room }, pc.localDescription);
  } catch (err) {
    end(err.message);
    throw err;
  }
  const stop = () => {
    if (closed) return;
    fetch(sessionUrl, {
      method: 'POST', keepalive: true,
      body: JSON.stringify({ janus: 'destroy', transaction: transaction() }),
    }).catch(() => {});
    end(null);
  };
  return { pc, stop };
}
