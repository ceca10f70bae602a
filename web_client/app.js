// The page: portrait gallery and upload, audio source, the call, live stats.

import {
  ApiError, authHeaders, avatarImageUrl, hasToken, interruptSession, listAvatars, sessionStats,
  setSessionStyle, setToken, uploadAvatar,
} from './api.js';
import { AvatarCall, Cancelled, fileSource, microphoneSource } from './rtc.js';
import { ReceiveStats } from './stats.js';

const MAX_UPLOAD_BYTES = 50 * 1024 * 1024;

const $ = (id) => document.getElementById(id);
const el = {
  stage: $('stage'),
  poster: $('poster'),
  video: $('remote-video'),
  overlayText: $('overlay-text'),
  unmute: $('unmute'),
  soundToggle: $('sound-toggle'),
  pill: $('state-pill'),
  stateText: $('state-text'),
  sourceFieldset: $('source-fieldset'),
  sourceMic: $('source-mic'),
  sourceFile: $('source-file'),
  filePick: $('file-pick'),
  audioFile: $('audio-file'),
  audioFileName: $('audio-file-name'),
  start: $('start'),
  interrupt: $('interrupt'),
  style: $('style'),
  intensity: $('intensity'),
  intensityValue: $('intensity-value'),
  stop: $('stop'),
  meter: $('meter-fill'),
  message: $('message'),
  gallery: $('gallery'),
  galleryFieldset: $('gallery-fieldset'),
  portraitHint: $('portrait-hint'),
  dropzone: $('dropzone'),
  avatarFile: $('avatar-file'),
  uploadProgress: $('upload-progress'),
  uploadBar: $('upload-bar'),
  uploadStatus: $('upload-status'),
  uploadError: $('upload-error'),
  sessionIdLabel: $('session-id-label'),
  watchLink: $('watch-link'),
  audienceLink: $('audience-link'),
  tokenForm: $('token-form'),
  tokenInput: $('token-input'),
  tokenError: $('token-error'),
  stat: {
    fps: $('stat-fps'),
    decoded: $('stat-decoded'),
    dropped: $('stat-dropped'),
    jitter: $('stat-jitter'),
    rtt: $('stat-rtt'),
    size: $('stat-size'),
    serverLatency: $('stat-server-latency'),
    serverSent: $('stat-server-sent'),
    serverDropped: $('stat-server-dropped'),
    motionFrame: $('stat-motion-frame'),
    motionJaw: $('stat-motion-jaw'),
    motionBlink: $('stat-motion-blink'),
    motionSmile: $('stat-motion-smile'),
    motionBrow: $('stat-motion-brow'),
    motionHead: $('stat-motion-head'),
  },
};

const state = {
  avatars: [],
  selectedId: null,
  call: null,
  audioContext: null,
  meterFrame: 0,
  statsTimer: 0,
  motionTimer: 0,
  receiveStats: null,
  uploading: false,
};

/** The latest numbers, for people and tests: updated every second during a call. */
const EMPTY_STATS = {
  sessionId: null,
  connectionState: 'idle', // RTCPeerConnection.connectionState, or 'idle' / 'closed'
  phase: 'idle', // idle | starting | connecting | busy | live | reconnecting
  fps: null,
  framesDecoded: 0,
  framesDropped: 0,
  jitterBufferMs: null,
  rttMs: null,
  width: null,
  height: null,
  serverLatencyMs: null,
  serverFramesSent: null,
  serverFramesDropped: null,
  receiverBufferTargets: [], // jitterBufferTarget (or playoutDelayHint) of each receiver
  motionMessages: 0, // messages on the motion data channel
  motionFrame: null, // the newest one's frame index
  updatedAt: null,
};
const emoteStats = { ...EMPTY_STATS };
window.emoteStats = emoteStats;

// -- messages -------------------------------------------------------------------------------

function showMessage(text, kind = 'error') {
  el.message.textContent = text;
  el.message.dataset.kind = kind;
  el.message.hidden = !text;
}

const clearMessage = () => showMessage('');

// -- stage and controls ---------------------------------------------------------------------

const PILL = {
  idle: ['Ready', 'idle'],
  starting: ['Starting…', 'pending'],
  connecting: ['Connecting…', 'pending'],
  busy: ['Server busy', 'warn'],
  live: ['Live', 'live'],
  reconnecting: ['Reconnecting…', 'warn'],
};

function setPhase(phase, overlayText = '') {
  emoteStats.phase = phase;
  const [label, tone] = PILL[phase];
  el.stateText.textContent = label;
  el.pill.dataset.state = tone;
  el.stage.dataset.phase = phase;
  if (overlayText) el.overlayText.textContent = overlayText;

  const inCall = phase !== 'idle';
  el.start.disabled = inCall;
  el.stop.disabled = !inCall || phase === 'starting'; // a permission prompt cannot be cancelled
  el.stop.textContent = ['connecting', 'busy'].includes(phase) ? 'Cancel' : 'Stop';
  el.interrupt.disabled = phase !== 'live';
  if (!inCall) el.unmute.hidden = true;
  el.sourceFieldset.disabled = inCall;
  el.filePick.disabled = inCall;
  el.galleryFieldset.disabled = inCall || state.uploading;
  updateSoundToggle();
}

function showPoster() {
  const avatar = state.avatars.find((a) => a.id === state.selectedId);
  if (avatar) {
    avatarImageUrl(avatar).then((url) => { el.poster.src = url; }, () => {});
    el.poster.alt = `${avatar.name} (still portrait)`;
  }
}

async function playWithSound() {
  const video = el.video;
  video.muted = false;
  try {
    await video.play();
    el.unmute.hidden = true;
  } catch (err) {
    if (err.name !== 'NotAllowedError') return; // AbortError: a newer load() took over
    // Autoplay with sound is blocked until the user interacts: play muted, offer to unmute.
    video.muted = true;
    el.unmute.hidden = false;
    try { await video.play(); } catch { /* shown once a frame arrives */ }
  }
  updateSoundToggle();
}

function updateSoundToggle() {
  el.soundToggle.hidden = emoteStats.phase !== 'live' || !el.unmute.hidden;
  el.soundToggle.textContent = el.video.muted ? 'Unmute' : 'Mute';
  el.soundToggle.setAttribute('aria-pressed', String(el.video.muted));
}

el.unmute.addEventListener('click', async () => {
  el.video.muted = false;
  el.unmute.hidden = true;
  try { await el.video.play(); } catch { /* keep the state; the button below still works */ }
  updateSoundToggle();
});

el.soundToggle.addEventListener('click', () => {
  el.video.muted = !el.video.muted;
  if (!el.video.muted) el.unmute.hidden = true;
  updateSoundToggle();
});

el.video.addEventListener('resize', () => {
  if (el.video.videoWidth > 0) el.stage.classList.add('has-video');
});

// -- audio source ---------------------------------------------------------------------------

function updateSourceUi() {
  el.filePick.hidden = !el.sourceFile.checked;
}

el.sourceMic.addEventListener('change', updateSourceUi);
el.sourceFile.addEventListener('change', updateSourceUi);
el.audioFile.addEventListener('change', () => {
  const file = el.audioFile.files[0];
  el.audioFileName.textContent = file ? file.name : 'No file chosen';
  if (file) clearMessage();
});

function startMeter(node) {
  const analyser = state.audioContext.createAnalyser();
  analyser.fftSize = 1024;
  node.connect(analyser);
  const samples = new Float32Array(analyser.fftSize);
  const draw = () => {
    analyser.getFloatTimeDomainData(samples);
    let sum = 0;
    for (const s of samples) sum += s * s;
    const rms = Math.sqrt(sum / samples.length);
    const level = Math.min(1, Math.max(0, (20 * Math.log10(rms + 1e-8) + 60) / 54)); // -60..-6 dBFS
    el.meter.style.transform = `scaleX(${level.toFixed(3)})`;
    state.meterFrame = requestAnimationFrame(draw);
  };
  draw();
}

function stopMeter() {
  cancelAnimationFrame(state.meterFrame);
  el.meter.style.transform = 'scaleX(0)';
}

// -- the call -------------------------------------------------------------------------------

async function start() {
  clearMessage();
  showUploadError('');
  const useFile = el.sourceFile.checked;
  const file = el.audioFile.files[0];
  if (useFile && !file) {
    showMessage('Choose an audio file to play, or switch to the microphone.');
    el.audioFile.focus();
    return;
  }
  if (!state.selectedId) {
    showMessage('No portrait is available yet.');
    return;
  }
  Object.assign(emoteStats, EMPTY_STATS);
  renderStats();
  // Created inside the click, so the browser lets it run.
  state.audioContext = new AudioContext({ latencyHint: 'interactive' });
  setPhase('starting', useFile ? 'Decoding the audio file…' : 'Opening the microphone…');

  let source;
  try {
    source = useFile
      ? await fileSource(state.audioContext, file)
      : await microphoneSource(state.audioContext);
    await state.audioContext.resume();
  } catch (err) {
    finishCall(err.message);
    return;
  }
  startMeter(source.node);
  source.onended = () => {
    if (state.call?.source === source && !state.call.closed) {
      showMessage('The audio file has finished; the portrait is idling. Press Stop to end.', 'info');
    }
  };

  const call = new AvatarCall({ avatarId: state.selectedId, source, style: chosenStyle });
  state.call = call;
  call.addEventListener('phase', (event) => onCallPhase(call, event.detail));
  call.addEventListener('ended', (event) => {
    if (state.call === call) finishCall(event.detail.message);
  });
  try {
    await call.start();
  } catch (err) {
    if (err instanceof Cancelled) return;
    const message = err instanceof ApiError ? `The server refused the call: ${err.message}` : err.message;
    await call.stop(message || 'Could not start the call.');
  }
}

function onCallPhase(call, { phase, retryInS }) {
  if (state.call !== call) return;
  switch (phase) {
    case 'connecting':
      clearMessage();
      setPhase('connecting', 'Connecting…');
      break;
    case 'busy': {
      const text = `Server busy, retrying in ${retryInS} s`;
      setPhase('busy', text);
      showMessage(`${text}. Press Cancel to give up.`, 'info');
      break;
    }
    case 'live':
      clearMessage();
      setPhase('live', 'Waiting for the first frame…');
      emoteStats.sessionId = call.sessionId;
      emoteStats.receiverBufferTargets = call.pc.getReceivers()
        .map((r) => r.jitterBufferTarget ?? r.playoutDelayHint ?? null);
      el.sessionIdLabel.textContent = `session ${call.sessionId.slice(0, 8)}`;
      el.watchLink.href = `/static/watch.html?session=${call.sessionId}`;
      el.watchLink.hidden = false;
      if (el.video.srcObject !== call.remoteStream) {
        el.video.srcObject = call.remoteStream;
        playWithSound();
      }
      startStats(call);
      break;
    case 'reconnecting':
      setPhase('reconnecting', 'Connection interrupted, reconnecting…');
      break;
    default:
      break;
  }
  emoteStats.connectionState = call.pc?.connectionState ?? 'new';
}

function finishCall(message) {
  clearInterval(state.statsTimer);
  clearInterval(state.motionTimer);
  stopMeter();
  state.call = null;
  state.audioContext?.close().catch(() => {});
  state.audioContext = null;
  el.video.pause();
  el.video.srcObject = null;
  el.stage.classList.remove('has-video');
  el.sessionIdLabel.textContent = '';
  el.watchLink.hidden = true;
  el.audienceLink.hidden = true;
  emoteStats.connectionState = 'closed';
  emoteStats.sessionId = null;
  setPhase('idle', 'Pick a portrait and an audio source, then press Start.');
  if (message) showMessage(message);
}

el.start.addEventListener('click', start);

el.stop.addEventListener('click', async () => {
  const call = state.call;
  if (!call) return;
  try {
    await call.stop();
  } catch (err) {
    showMessage(`The session was closed here, but the server said: ${err.message}`);
  }
});

el.interrupt.addEventListener('click', async () => {
  const call = state.call;
  if (!call?.sessionId) return;
  call.source.onended = null; // stopping the file here is not its natural end
  call.source.halt();
  try {
    await interruptSession(call.sessionId);
    showMessage(
      call.source.kind === 'file'
        ? 'Interrupted: the audio file was stopped and the portrait is easing back to idle.'
        : 'Interrupted: queued speech was dropped.',
      'info',
    );
  } catch (err) {
    showMessage(`Interrupt failed: ${err.message}`);
  }
});

// -- speaking style: sent with the offer, changed live during a call --------------------------

function chosenStyle() {
  return { style: el.style.value, intensity: Number(el.intensity.value) };
}

let styleTimer = null;
async function sendStyle() {
  const call = state.call;
  if (!call?.sessionId) return; // not live yet: the offer will carry it
  const { style, intensity } = chosenStyle();
  try {
    await setSessionStyle(call.sessionId, style, intensity);
  } catch (err) {
    showMessage(`Style change failed: ${err.message}`);
  }
}

el.style.addEventListener('change', sendStyle);
el.intensity.addEventListener('input', () => {
  el.intensityValue.textContent = Number(el.intensity.value).toFixed(2);
  clearTimeout(styleTimer); // a drag sends its last value, not every step
  styleTimer = setTimeout(sendStyle, 150);
});

window.addEventListener('pagehide', () => {
  const id = state.call?.sessionId;
  if (id) {
    fetch(`/api/sessions/${encodeURIComponent(id)}`, {
      method: 'DELETE', keepalive: true, headers: authHeaders(),
    });
  }
});

// -- stats ----------------------------------------------------------------------------------

const fmt = (value, unit = '') => (value == null ? '–' : `${value.toLocaleString()}${unit}`);

function renderStats() {
  const s = emoteStats;
  el.stat.fps.textContent = fmt(s.fps);
  el.stat.decoded.textContent = fmt(s.framesDecoded);
  el.stat.dropped.textContent = fmt(s.framesDropped);
  el.stat.jitter.textContent = fmt(s.jitterBufferMs, ' ms');
  el.stat.rtt.textContent = fmt(s.rttMs, ' ms');
  el.stat.size.textContent = s.width ? `${s.width}×${s.height}` : '–';
  el.stat.serverLatency.textContent = fmt(s.serverLatencyMs, ' ms');
  el.stat.serverSent.textContent = fmt(s.serverFramesSent);
  el.stat.serverDropped.textContent = fmt(s.serverFramesDropped);
}

const num = (value, digits = 2) => (value == null ? '–' : value.toFixed(digits));
const deg = (rad) => `${((rad * 180) / Math.PI).toFixed(1)}°`;

function renderMotion(call) {
  const m = call.lastMotion;
  emoteStats.motionMessages = call.motionMessages;
  if (!m) return;
  emoteStats.motionFrame = m.frame;
  const a = m.arkit;
  el.stat.motionFrame.textContent = fmt(m.frame);
  el.stat.motionJaw.textContent = num(a.jawOpen);
  el.stat.motionBlink.textContent = `${num(a.eyeBlinkLeft)} / ${num(a.eyeBlinkRight)}`;
  el.stat.motionSmile.textContent = `${num(a.mouthSmileLeft)} / ${num(a.mouthSmileRight)}`;
  el.stat.motionBrow.textContent = num(a.browInnerUp);
  el.stat.motionHead.textContent = `${deg(m.head.yaw)} / ${deg(m.head.pitch)} / ${deg(m.head.roll)}`;
}

/** The session published into Janus (emote serve --publish-to): a link for its audience. */
function showAudienceLink(published) {
  if (published?.room && published?.feed && published?.janus) {
    const query = new URLSearchParams({
      janus: published.janus, room: String(published.room), feed: String(published.feed),
    });
    el.audienceLink.href = `/static/watch.html?${query}`;
    el.audienceLink.hidden = false;
  } else {
    el.audienceLink.hidden = true;
  }
}

function startStats(call) {
  clearInterval(state.statsTimer);
  clearInterval(state.motionTimer);
  state.motionTimer = setInterval(() => {
    if (state.call === call && !call.closed) renderMotion(call);
  }, 100);
  state.receiveStats = new ReceiveStats();
  let busy = false;
  const tick = async () => {
    if (busy || state.call !== call || call.closed) return;
    busy = true;
    try {
      const [local, server] = await Promise.allSettled([
        state.receiveStats.sample(call.pc),
        sessionStats(call.sessionId),
      ]);
      if (state.call !== call) return;
      if (local.status === 'fulfilled') Object.assign(emoteStats, local.value);
      if (server.status === 'fulfilled') {
        emoteStats.serverLatencyMs = server.value.latency_ms;
        emoteStats.serverFramesSent = server.value.frames_sent;
        emoteStats.serverFramesDropped = server.value.frames_dropped;
        showAudienceLink(server.value.published);
      } else if (server.reason instanceof ApiError && server.reason.status === 404) {
        call.stop('The server ended the session.').catch(() => {});
        return;
      }
      emoteStats.connectionState = call.pc.connectionState;
      emoteStats.updatedAt = Date.now();
      renderStats();
    } finally {
      busy = false;
    }
  };
  tick();
  state.statsTimer = setInterval(tick, 1000);
}

// -- portraits ------------------------------------------------------------------------------

function renderGallery() {
  el.gallery.replaceChildren();
  for (const avatar of state.avatars) {
    const id = `avatar-${avatar.id}`;
    const input = Object.assign(document.createElement('input'), {
      type: 'radio',
      name: 'avatar',
      id,
      value: avatar.id,
      checked: avatar.id === state.selectedId,
      className: 'visually-hidden',
    });
    input.addEventListener('change', () => selectAvatar(avatar.id));
    const label = document.createElement('label');
    label.htmlFor = id;
    label.className = 'thumb';
    label.title = avatar.name;
    const img = Object.assign(document.createElement('img'), {
      alt: '',
      loading: 'lazy',
      width: 96,
      height: 96,
    });
    const name = Object.assign(document.createElement('span'), {
      className: 'thumb-name',
      textContent: avatar.name,
    });
    avatarImageUrl(avatar).then((url) => { img.src = url; }, () => {});
    label.append(img, name);
    if (avatar.default) {
      label.append(Object.assign(document.createElement('span'), {
        className: 'badge',
        textContent: 'Default',
      }));
    }
    el.gallery.append(input, label);
  }
  el.gallery.setAttribute('aria-busy', 'false');
}

function selectAvatar(id) {
  state.selectedId = id;
  const avatar = state.avatars.find((a) => a.id === id);
  el.portraitHint.textContent = avatar?.warnings?.length ? avatar.warnings.join(' ') : '';
  showPoster();
}

async function loadAvatars() {
  try {
    state.avatars = await listAvatars();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      askForToken(hasToken() ? 'That token was not accepted; check it and try again.' : '');
      return;
    }
    el.gallery.replaceChildren(Object.assign(document.createElement('p'), {
      className: 'field-error',
      textContent: `Cannot load the portraits: ${err.message}`,
    }));
    return;
  }
  const chosen = state.avatars.find((a) => a.default) ?? state.avatars[0];
  state.selectedId = chosen?.id ?? null;
  renderGallery();
  if (chosen) selectAvatar(chosen.id);
}

// -- access token (servers bound beyond loopback ask for one) -------------------------------

function askForToken(problem) {
  el.tokenForm.hidden = false;
  el.tokenError.textContent = problem;
  el.tokenError.hidden = !problem;
  el.tokenInput.focus();
}

el.tokenForm.addEventListener('submit', (event) => {
  event.preventDefault();
  setToken(el.tokenInput.value);
  el.tokenInput.value = '';
  el.tokenForm.hidden = true;
  loadAvatars();
});

function setUploadProgress(fraction, text) {
  el.uploadProgress.hidden = false;
  el.uploadProgress.dataset.indeterminate = String(fraction == null);
  el.uploadBar.style.transform = `scaleX(${fraction ?? 1})`;
  el.uploadStatus.textContent = text;
}

function showUploadError(text) {
  el.uploadError.textContent = text;
  el.uploadError.hidden = !text;
}

async function upload(file) {
  if (state.uploading || state.call) return;
  showUploadError('');
  if (file.size > MAX_UPLOAD_BYTES) {
    showUploadError(`"${file.name}" is over 50 MB; choose a smaller image.`);
    return;
  }
  state.uploading = true;
  el.galleryFieldset.disabled = true;
  el.dropzone.classList.add('busy');
  setUploadProgress(0, `Uploading ${file.name}…`);
  try {
    const avatar = await uploadAvatar(file, {
      onProgress: (f) => setUploadProgress(f, `Uploading ${file.name}… ${Math.round(f * 100)}%`),
      onSent: () => setUploadProgress(null, 'Preparing… finding the face and building the rig'),
    });
    state.avatars = [...state.avatars.filter((a) => a.id !== avatar.id), avatar];
    state.selectedId = avatar.id;
    renderGallery();
    selectAvatar(avatar.id);
  } catch (err) {
    showUploadError(`Could not use "${file.name}": ${err.message}`);
  } finally {
    state.uploading = false;
    el.uploadProgress.hidden = true;
    el.dropzone.classList.remove('busy');
    el.galleryFieldset.disabled = Boolean(state.call);
    el.avatarFile.value = '';
  }
}

el.avatarFile.addEventListener('change', () => {
  const file = el.avatarFile.files[0];
  if (file) upload(file);
});

// Dropping a file anywhere else must not navigate away from the call.
for (const type of ['dragover', 'drop']) {
  window.addEventListener(type, (event) => event.preventDefault());
}
el.dropzone.addEventListener('dragenter', (event) => {
  event.preventDefault();
  el.dropzone.classList.add('dragging');
});
el.dropzone.addEventListener('dragover', (event) => {
  event.preventDefault();
  event.dataTransfer.dropEffect = state.call ? 'none' : 'copy';
});
el.dropzone.addEventListener('dragleave', (event) => {
  if (!el.dropzone.contains(event.relatedTarget)) el.dropzone.classList.remove('dragging');
});
el.dropzone.addEventListener('drop', (event) => {
  event.preventDefault();
  el.dropzone.classList.remove('dragging');
  const file = event.dataTransfer.files[0];
  if (!file) return;
  if (state.call) {
    showUploadError('Stop the session before adding a portrait.');
    return;
  }
  upload(file);
});

// -- go -------------------------------------------------------------------------------------

if (!window.RTCPeerConnection) {
  showMessage('This browser does not support WebRTC, which the live avatar needs.');
  el.start.disabled = true;
}
updateSourceUi();
setPhase('idle');
if (!window.RTCPeerConnection) el.start.disabled = true;
loadAvatars();
