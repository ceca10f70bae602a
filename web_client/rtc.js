// One call to the avatar server: an audio source up, the avatar's video and audio down.

import { ApiError, deleteSession, iceServers, postOffer } from './api.js';

const ICE_GATHERING_TIMEOUT_MS = 5000;
const CONNECT_TIMEOUT_MS = 15000; // the server drops a session that has not connected by then

/** Thrown out of AvatarCall.start() when stop() was called while it was still starting. */
export class Cancelled extends Error {}

/** The microphone: echo cancellation on, since the avatar's audio plays back in the room. */
export async function microphoneSource(audioContext) {
  if (!navigator.mediaDevices?.getUserMedia) {
    throw new Error('This browser cannot capture audio here (a secure context, https or localhost, is needed).');
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      video: false,
    });
  } catch (err) {
    if (err.name === 'NotAllowedError' || err.name === 'SecurityError') {
      throw new Error('Microphone access was denied. Allow it in the address bar, or play an audio file instead.');
    }
    if (err.name === 'NotFoundError' || err.name === 'OverconstrainedError') {
      throw new Error('No microphone was found. Plug one in, or play an audio file instead.');
    }
    if (err.name === 'NotReadableError') {
      throw new Error('The microphone is busy in another application.');
    }
    throw new Error(`Cannot open the microphone: ${err.message || err.name}`);
  }
  const track = stream.getAudioTracks()[0];
  const input = audioContext.createMediaStreamSource(stream);
  return {
    kind: 'mic',
    track,
    node: input,
    begin() {},
    halt() {}, // a microphone keeps listening after an interrupt
    stop() {
      stream.getTracks().forEach((t) => t.stop());
      input.disconnect();
    },
    onended: null,
  };
}

/**
 * An audio file played through WebAudio into the peer connection only: the server returns
 * it in sync with the video, so it is not played locally as well.
 */
export async function fileSource(audioContext, file) {
  let buffer;
  try {
    buffer = await audioContext.decodeAudioData(await file.arrayBuffer());
  } catch {
    throw new Error(`Cannot decode "${file.name}". Try a WAV, MP3, M4A, Ogg or FLAC file.`);
  }
  const destination = audioContext.createMediaStreamDestination();
  const player = audioContext.createBufferSource();
  player.buffer = buffer;
  player.connect(destination);
  let started = false;
  const source = {
    kind: 'file',
    track: destination.stream.getAudioTracks()[0],
    node: player,
    durationS: buffer.duration,
    begin() {
      if (!started) {
        started = true;
        player.start();
      }
    },
    halt() { // an interrupt ends the file's speech; the session stays and the face idles
      if (started) {
        try { player.stop(); } catch { /* already stopped */ }
      }
    },
    stop() {
      source.onended = null;
      source.halt();
      player.disconnect();
      destination.stream.getTracks().forEach((t) => t.stop());
    },
    onended: null,
  };
  player.addEventListener('ended', () => source.onended?.());
  return source;
}

export function waitForIceGathering(pc) {
  if (pc.iceGatheringState === 'complete') return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      pc.removeEventListener('icegatheringstatechange', check);
      resolve();
    };
    const check = () => { if (pc.iceGatheringState === 'complete') done(); };
    // Gathering can stall on an odd interface; what was gathered by then is usually enough.
    const timer = setTimeout(done, ICE_GATHERING_TIMEOUT_MS);
    pc.addEventListener('icegatheringstatechange', check);
  });
}

/** Ask the browser to play out as soon as it can (the server already paces the frames). */
export function minimizePlayoutDelay(receiver) {
  try {
    if ('jitterBufferTarget' in receiver) receiver.jitterBufferTarget = 0;
    else if ('playoutDelayHint' in receiver) receiver.playoutDelayHint = 0;
  } catch {
    // not supported here: the browser's default buffering applies
  }
}

/**
 * Events (all on this EventTarget, details in event.detail):
 *   phase   {phase: 'connecting' | 'busy' | 'live' | 'reconnecting', retryInS?}
 *   ended   {message?: string}  the call is over (after stop(), or it failed)
 */
export class AvatarCall extends EventTarget {
  constructor({ avatarId, source, style = null }) {
    super();
    this.avatarId = avatarId;
    this.style = style; // () => ({ style, intensity }): read when the offer is sent
    this.source = source;
    this.pc = null;
    this.sessionId = null;
    this.remoteStream = new MediaStream();
    this.closed = false;
    this.motion = null; // the "motion" data channel: each video frame's ARKit motion
    this.lastMotion = null;
    this.motionMessages = 0;
    this._timers = new Set();
    this._connectTimer = null;
  }

  _emit(type, detail = {}) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  _check() {
    if (this.closed) throw new Cancelled();
  }

  _sleep(ms) {
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this._timers.delete(timer); resolve(); }, ms);
      this._timers.add(timer);
    });
  }

  async start() {
    const servers = await iceServers(); // STUN/TURN for clients behind NAT
    this._check();
    const pc = new RTCPeerConnection({ iceServers: servers });
    this.pc = pc;
    pc.addTrack(this.source.track, new MediaStream([this.source.track]));
    pc.addTransceiver('video', { direction: 'recvonly' });
    // Each video frame's motion (ARKit blendshapes, head pose, gaze; docs/api.md): shown in
    // the page, and what a 3D avatar would be driven with.
    this.motion = pc.createDataChannel('motion');
    this.motion.addEventListener('message', (event) => {
      let message;
      try { message = JSON.parse(event.data); } catch { return; }
      if (message.type === 'motion') {
        this.lastMotion = message;
        this.motionMessages += 1;
      }
    });
    pc.addEventListener('track', (event) => {
      minimizePlayoutDelay(event.receiver);
      this.remoteStream.addTrack(event.track);
    });
    pc.addEventListener('connectionstatechange', () => this._onConnectionState());

    this._emit('phase', { phase: 'connecting' });
    await pc.setLocalDescription(await pc.createOffer());
    await waitForIceGathering(pc); // the server takes no trickled candidates
    this._check();

    const offer = {
      sdp: pc.localDescription.sdp, type: pc.localDescription.type, avatar: this.avatarId,
      ...(this.style ? this.style() : {}),
    };
    let answer;
    for (;;) {
      try {
        answer = await postOffer(offer);
        break;
      } catch (err) {
        this._check();
        if (!(err instanceof ApiError) || err.status !== 503) throw err;
        await this._countdown(err.retryAfterS ?? 5);
        this._emit('phase', { phase: 'connecting' });
      }
    }
    this._check();
    this.sessionId = answer.session_id;
    await pc.setRemoteDescription({ sdp: answer.sdp, type: answer.type });
    for (const receiver of pc.getReceivers()) minimizePlayoutDelay(receiver);
    this._check();
    this._connectTimer = setTimeout(() => {
      if (pc.connectionState !== 'connected') {
        this._fail('The media connection could not be set up (no ICE route to the server).');
      }
    }, CONNECT_TIMEOUT_MS);
    this._onConnectionState();
  }

  async _countdown(seconds) {
    for (let left = Math.max(1, Math.round(seconds)); left > 0; left -= 1) {
      this._emit('phase', { phase: 'busy', retryInS: left });
      await this._sleep(1000);
      this._check();
    }
  }

  _onConnectionState() {
    if (this.closed || !this.pc) return;
    switch (this.pc.connectionState) {
      case 'connected':
        clearTimeout(this._connectTimer);
        this.source.begin();
        this._emit('phase', { phase: 'live' });
        break;
      case 'disconnected':
        this._emit('phase', { phase: 'reconnecting' });
        break;
      case 'failed':
        this._fail('The connection to the server was lost.');
        break;
      default:
        break;
    }
  }

  _fail(message) {
    if (!this.closed) this.stop(message).catch(() => {});
  }

  /** Close the peer connection and free the server's session. Safe to call twice. */
  async stop(message) {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this._connectTimer);
    this._timers.forEach(clearTimeout);
    // Ask the server first: closing the peer connection also ends the session there, and
    // whichever comes second would find nothing to close.
    const deleted = this.sessionId ? deleteSession(this.sessionId) : Promise.resolve();
    this.source.stop();
    this.pc?.close();
    this.remoteStream.getTracks().forEach((t) => t.stop());
    this._emit('ended', { message });
    try {
      await deleted;
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 404) throw err;
    }
  }
}
