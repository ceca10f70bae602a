// Watch a session without taking part (WHEP, docs/api.md "WHIP and WHEP"): the page's link
// is /static/watch.html?session=ID (and #token=... where the server needs one).
import { authHeaders, iceServers } from './api.js';
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

async function watch() {
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
  emoteWatch.phase = 'live';
  stateText.textContent = 'Watching';
  const count = () => {
    const quality = video.getVideoPlaybackQuality?.();
    if (quality) emoteWatch.framesDecoded = quality.totalVideoFrames;
    requestAnimationFrame(count);
  };
  count();
}

$('watch-sound').addEventListener('click', () => {
  video.muted = !video.muted;
  $('watch-sound').textContent = video.muted ? 'Sound on' : 'Sound off';
});

watch().catch((err) => fail(err.message || String(err)));
