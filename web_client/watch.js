// Watch a session without taking part. Two kinds of link:
// * /static/watch.html?session=ID (and #token=... where the server needs one): from the
//   avatar server itself, over WHEP (docs/api.md, "WHIP and WHEP");
// * /static/watch.html?janus=URL&room=N&feed=N: from the Janus VideoRoom the session is
//   published into (docs/api.md, "Fan-out through Janus"), for an audience of any size; it
//   needs no token of the avatar server.
import { authHeaders, iceServers } from './api.js';
import { janusBase, subscribe } from './janus.js';
import { minimizePlayoutDelay, waitForIceGathering } from './rtc.js';

const $ = (id) => document.getElementById(id);
const video = $('watch-video');
const stateText = $('state-text');
const message = $('watch-message');

/** For people and tests: the viewer's state and frames decoded. */
const emoteWatch = { phase: 'connecting', framesDecoded: 0, resource: null };
window.emoteWatch = emoteWatch;

function fail(text) {
  emoteWatch.phase = 'failed';
  stateText.textContent = 'Not watching';
  message.textContent = text;
  message.hidden = false;
}

async function watchWhep() {
  const match = /(?:^\?|&)session=([0-9a-z-]+)/.exec(window.location.search);
  if (!match) return fail('This link names no session (?session=ID).');
  const pc = new RTCPeerConnection({ iceServers: await iceServers() });
  pc.addTransceiver('video', { direction: 'recvonly' });
  pc.addTransceiver('audio', { direction: 'recvonly' });
  const stream = new MediaStream();
  pc.addEventListener('track', (event) => {
    minimizePlayoutDelay(event.receiver);
    stream.addTrack(event.track);
  });
  video.srcObject = stream;
  await pc.setLocalDescription(await pc.createOffer());
  await waitForIceGathering(pc); // the server takes no trickled candidates
  const response = await fetch(`/whep/${match[1]}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/sdp', ...authHeaders() },
    body: pc.localDescription.sdp,
  });
  if (response.status !== 201) {
    let text = `${response.status}`;
    try { text = (await response.json()).error; } catch { /* not JSON */ }
    pc.close();
    return fail(`The server refused: ${text}`);
  }
  emoteWatch.resource = response.headers.get('Location');
  await pc.setRemoteDescription({ type: 'answer', sdp: await response.text() });
  pc.addEventListener('connectionstatechange', () => {
    if (['failed', 'closed'].includes(pc.connectionState)) fail('The session ended.');
  });
  window.addEventListener('pagehide', () => {
    if (emoteWatch.resource) {
      fetch(emoteWatch.resource, { method: 'DELETE', headers: authHeaders(), keepalive: true });
    }
  });
  live();
}

function live() {
  emoteWatch.phase = 'live';
  stateText.textContent = 'Watching';
  const count = () => {
    const quality = video.getVideoPlaybackQuality?.();
    if (quality) emoteWatch.framesDecoded = quality.totalVideoFrames;
    requestAnimationFrame(count);
  };
  count();
}

async function watchJanus(params) {
  let base;
  try {
    base = janusBase(params.get('janus'));
  } catch (err) {
    return fail(`This link's Janus URL is not usable: ${err.message}`);
  }
  const room = Number(params.get('room'));
  const feed = Number(params.get('feed'));
  if (!Number.isSafeInteger(room) || !Number.isSafeInteger(feed) || room <= 0 || feed <= 0) {
    return fail('This link names no room and feed (&room=N&feed=N).');
  }
  const stream = new MediaStream();
  video.srcObject = stream;
  const { stop } = await subscribe({
    base,
    room,
    feed,
    onTrack: (track, receiver) => {
      minimizePlayoutDelay(receiver);
      stream.addTrack(track);
    },
    onEnd: (reason) => { if (reason) fail(reason); },
  });
  emoteWatch.resource = `janus ${new URL(base).host} room ${room} feed ${feed}`;
  window.addEventListener('pagehide', stop);
  live();
}

function watch() {
  const params = new URLSearchParams(window.location.search);
  return params.has('janus') ? watchJanus(params) : watchWhep();
}

$('watch-sound').addEventListener('click', () => {
  video.muted = !video.muted;
  $('watch-sound').textContent = video.muted ? 'Sound on' : 'Sound off';
});

watch().catch((err) => fail(err.message || String(err)));
