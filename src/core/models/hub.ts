/**
 * Reads one model's config.json from the Hugging Face Hub: `GET <endpoint>/<id>/resolve/main/config.json`, the URL
 * huggingface_hub downloads it from. node:https/http only. Every way it can fail is an answer that says what to do.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import { parseLenientJson } from './lenient-json';

export type HubAnswer =
  | { kind: 'ok'; url: string; config: unknown }
  /** 401/403 the Hub marks GatedRepo (or any 403): the model needs a token of an account that accepted its terms. */
  | { kind: 'gated'; url: string; status: number; withToken: boolean; message: string }
  /** 404, or the 401 the Hub gives anonymous requests for a repo it will not name (missing, or private). */
  | { kind: 'not-found'; url: string; status: number; message: string }
  | { kind: 'timeout'; url: string; message: string }
  /** No connection at all (DNS, refused, no route): the machine is offline or the endpoint is wrong. */
  | { kind: 'offline'; url: string; message: string }
  | { kind: 'error'; url: string; message: string };

export interface HubRequest {
  endpoint: string;
  token?: string;
  timeoutMs?: number;
}

/** config.json is a few kB; anything far larger is not one. */
const MAX_BYTES = 4 << 20;
const MAX_REDIRECTS = 5;

export function hubConfigUrl(endpoint: string, id: string): string {
  return `${endpoint.replace(/\/+$/, '')}/${id.split('/').map(encodeURIComponent).join('/')}/resolve/main/config.json`;
}

export async function fetchHubConfig(id: string, request: HubRequest): Promise<HubAnswer> {
  const url = hubConfigUrl(request.endpoint, id);
  const timeoutMs = request.timeoutMs ?? 5000;
  let at = new URL(url);
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    // The token goes only to the endpoint's own host: a redirect to a CDN must not carry it.
    const sameHost = at.host === new URL(url).host;
    const response = await get(at, request.token && sameHost ? request.token : undefined, timeoutMs).catch((error: Error & { code?: string }) => error);
    if (response instanceof Error) {
      if (response.code === 'ETIMEDOUT')
        return { kind: 'timeout', url, message: `the Hub did not answer within ${timeoutMs / 1000} s (${at.host})` };
      const offline = ['ENOTFOUND', 'EAI_AGAIN', 'ECONNREFUSED', 'ENETUNREACH', 'EHOSTUNREACH', 'ECONNRESET'].includes(response.code ?? '');
      return { kind: offline ? 'offline' : 'error', url, message: `cannot reach ${at.host}: ${response.code ?? response.message}` };
    }
    const { status, headers, body } = response;
    const location = headers.location;
    if (status >= 300 && status < 400 && typeof location === 'string') {
      at = new URL(location, at);
      continue;
    }
    const errorCode = String(headers['x-error-code'] ?? '');
    const said = String(headers['x-error-message'] ?? '').trim();
    const detail = said ? ` (${said})` : '';
    if (status === 200) {
      try {
        return { kind: 'ok', url, config: parseLenientJson(body) };
      } catch (error) {
        return { kind: 'error', url, message: `the Hub's config.json is not JSON: ${(error as Error).message}` };
      }
    }
    if (errorCode === 'GatedRepo' || status === 403)
      return { kind: 'gated', url, status, withToken: Boolean(request.token), message: `HTTP ${status}: ${id} is gated${detail}` };
    if (status === 404 || status === 401)
      return { kind: 'not-found', url, status, message: `HTTP ${status}${errorCode ? ` ${errorCode}` : ''}: no such model or file on the Hub${status === 401 && !request.token ? ', or it is private or gated (no token was sent)' : ''}${detail}` };
    return { kind: 'error', url, message: `HTTP ${status}${detail}` };
  }
  return { kind: 'error', url, message: `more than ${MAX_REDIRECTS} redirects` };
}

interface Response {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function get(url: URL, token: string | undefined, timeoutMs: number): Promise<Response> {
  const client = url.protocol === 'http:' ? http : https;
  return new Promise((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders = { accept: 'application/json', 'user-agent': 'wattbench' };
    if (token) headers.authorization = `Bearer ${token}`;
    const req = client.get(url, { headers }, (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_BYTES) req.destroy(Object.assign(new Error(`config.json larger than ${MAX_BYTES} bytes`), { code: 'ETOOBIG' }));
        else chunks.push(chunk);
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    // One deadline for the whole answer, headers and body: a server that accepts and never answers times out too.
    const timer = setTimeout(() => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })), timeoutMs);
    req.on('error', reject);
    req.on('close', () => clearTimeout(timer));
  });
}
