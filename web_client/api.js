// The server's HTTP API (docs/api.md). Errors come back as {"error": "message"}.

export class ApiError extends Error {
  constructor(status, message, retryAfterS = null) {
    super(message);
    this.status = status;
    this.retryAfterS = retryAfterS;
  }
}

// The server's access token (emote serve --token; required beyond loopback). Entered once,
// or given as the link's #token=..., and kept for this tab (sessionStorage): never in the URL
// the server sees, never in a cookie another site's request would carry.
const TOKEN_KEY = 'emote-token';
let token = sessionStorage.getItem(TOKEN_KEY) ?? '';

(function tokenFromLink() {
  const match = /(?:^#|&)token=([^&]+)/.exec(window.location.hash);
  if (!match) return;
  setToken(decodeURIComponent(match[1]));
  history.replaceState(null, '', window.location.pathname + window.location.search);
})();

export function setToken(value) {
  token = value.trim();
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export const hasToken = () => token !== '';

export function authHeaders() {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

async function errorFrom(response) {
  let message = `${response.status} ${response.statusText}`.trim();
  try {
    const body = await response.json();
    if (body && typeof body.error === 'string') message = body.error;
  } catch {
    // not JSON: keep the status line
  }
  const retry = Number.parseInt(response.headers.get('Retry-After') ?? '', 10);
  return new ApiError(response.status, message, Number.isFinite(retry) ? retry : null);
}

async function request(method, path, body) {
  const init = { method, headers: authHeaders() };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiError(0, 'Cannot reach the server. Is it running?');
  }
  if (!response.ok) throw await errorFrom(response);
  return response.json();
}

export const listAvatars = () => request('GET', '/api/avatars').then((r) => r.avatars);
export const postOffer = (offer) => request('POST', '/offer', offer);
/** STUN/TURN for RTCPeerConnection (emote serve --ice-server; TURN credentials minted per
 *  call). An older server without the route: none. */
export const iceServers = () =>
  request('GET', '/api/ice-servers').then((r) => r.iceServers, () => []);
export const sessionStats = (id) => request('GET', `/api/sessions/${encodeURIComponent(id)}`);
export const interruptSession = (id) =>
  request('POST', `/api/sessions/${encodeURIComponent(id)}/interrupt`);
export const setSessionStyle = (id, style, intensity) =>
  request('POST', `/api/sessions/${encodeURIComponent(id)}/style`, { style, intensity });
export const deleteSession = (id) =>
  request('DELETE', `/api/sessions/${encodeURIComponent(id)}`);

/**
 * Upload a portrait (multipart field "image"). XMLHttpRequest, because fetch cannot report
 * upload progress. onProgress(fraction) runs while sending; onSent() once the bytes are
 * all out and the server is preparing the avatar (finding the face, building the rig).
 */
export function uploadAvatar(file, { onProgress, onSent } = {}) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', '/api/avatars');
    xhr.responseType = 'json';
    for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
    xhr.upload.addEventListener('progress', (event) => {
      if (event.lengthComputable) onProgress?.(event.loaded / event.total);
    });
    xhr.upload.addEventListener('load', () => onSent?.());
    xhr.addEventListener('load', () => {
      const body = xhr.response;
      if (xhr.status >= 200 && xhr.status < 300 && body) {
        resolve(body);
      } else {
        const message = body && typeof body.error === 'string'
          ? body.error
          : `Upload failed (${xhr.status} ${xhr.statusText})`;
        reject(new ApiError(xhr.status, message));
      }
    });
    xhr.addEventListener('error', () => reject(new ApiError(0, 'Upload failed: cannot reach the server.')));
    xhr.addEventListener('abort', () => reject(new ApiError(0, 'Upload cancelled.')));
    const form = new FormData();
    form.append('image', file, file.name || 'portrait');
    xhr.send(form);
  });
}

const imageUrls = new Map(); // avatar id -> object URL of its image fetched with the token

/** A URL an <img> can show for the avatar's image: the API path itself without a token; with
 * one, the image fetched with it (an <img> cannot send headers). */
export async function avatarImageUrl(avatar) {
  if (!token) return avatar.image;
  if (!imageUrls.has(avatar.id)) {
    const response = await fetch(avatar.image, { headers: authHeaders() });
    if (!response.ok) throw await errorFrom(response);
    imageUrls.set(avatar.id, URL.createObjectURL(await response.blob()));
  }
  return imageUrls.get(avatar.id);
}
