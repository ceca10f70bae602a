// What the browser sees of the call, from RTCPeerConnection.getStats(), once a second.

const round1 = (x) => Math.round(x * 10) / 10;

export class ReceiveStats {
  constructor() {
    this._previous = null; // the last inbound-rtp video report, for per-interval numbers
  }

  /** {fps, framesDecoded, framesDropped, jitterBufferMs, rttMs, width, height} (null = unknown) */
  async sample(pc) {
    const report = await pc.getStats();
    let video = null;
    let pair = null;
    let selectedPairId = null;
    report.forEach((stat) => {
      if (stat.type === 'inbound-rtp' && stat.kind === 'video') video = stat;
      if (stat.type === 'transport' && stat.selectedCandidatePairId) {
        selectedPairId = stat.selectedCandidatePairId;
      }
    });
    if (selectedPairId) pair = report.get(selectedPairId) ?? null;
    if (!pair) {
      report.forEach((stat) => {
        if (stat.type === 'candidate-pair' && stat.state === 'succeeded' && stat.nominated) pair = stat;
      });
    }

    const out = {
      fps: null,
      framesDecoded: 0,
      framesDropped: 0,
      jitterBufferMs: null,
      rttMs: pair?.currentRoundTripTime != null ? round1(pair.currentRoundTripTime * 1000) : null,
      width: null,
      height: null,
    };
    if (!video) return out;

    const previous = this._previous;
    this._previous = video;
    out.framesDecoded = video.framesDecoded ?? 0;
    out.framesDropped = video.framesDropped ?? 0;
    out.width = video.frameWidth ?? null;
    out.height = video.frameHeight ?? null;
    if (video.framesPerSecond != null) {
      out.fps = round1(video.framesPerSecond);
    } else if (previous) {
      const seconds = (video.timestamp - previous.timestamp) / 1000;
      if (seconds > 0) out.fps = round1((out.framesDecoded - (previous.framesDecoded ?? 0)) / seconds);
    }
    // The jitter buffer's delay over the last interval; the whole call's average at first.
    const delay = video.jitterBufferDelay;
    const emitted = video.jitterBufferEmittedCount;
    if (delay != null && emitted) {
      const dCount = previous ? emitted - (previous.jitterBufferEmittedCount ?? 0) : 0;
      const dDelay = previous ? delay - (previous.jitterBufferDelay ?? 0) : 0;
      out.jitterBufferMs = round1(dCount > 0 ? (dDelay / dCount) * 1000 : (delay / emitted) * 1000);
    }
    return out;
  }
}
