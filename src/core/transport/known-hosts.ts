/**
 * Host-key checking against OpenSSH's known_hosts (plain and hashed `|1|salt|hash` entries, `[host]:port`
 * for other ports), with StrictHostKeyChecking's meanings. ssh2 accepts any key unless told otherwise;
 * this is what tells it.
 */
import { createHmac } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';

export type HostKeyVerdict =
  | { status: 'known' }
  | { status: 'unknown' }
  | { status: 'changed'; file: string; line: number }
  /** The host is known, but only by keys of other types: not a new host, and not to be accepted as one. */
  | { status: 'other-type'; file: string; line: number; knownTypes: string[] };

/** The name OpenSSH looks up for a host: lower-cased, `host` on port 22, `[host]:port` otherwise. */
export function knownHostsName(host: string, port: number): string {
  const name = host.toLowerCase();
  return port === 22 ? name : `[${name}]:${port}`;
}

function patternMatches(pattern: string, name: string): boolean {
  if (pattern.startsWith('|1|')) {
    const [, , salt, hash] = pattern.split('|');
    if (!salt || !hash) return false;
    return createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64') === hash;
  }
  const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 'i');
  return re.test(name);
}

/** Looks the key up; `keyBlob` is the raw public key as the server sent it. */
export function checkHostKey(files: string[], host: string, port: number, keyType: string, keyBlob: Buffer): HostKeyVerdict {
  const name = knownHostsName(host, port);
  const key = keyBlob.toString('base64');
  let changed: HostKeyVerdict | undefined;
  let otherType: { file: string; line: number; knownTypes: string[] } | undefined;
  for (const file of files) {
    if (!existsSync(file)) continue;
    const lines = readFileSync(file, 'utf8').split(/\r?\n/);
    for (const [index, raw] of lines.entries()) {
      const line = raw.trim();
      if (!line || line.startsWith('#')) continue;
      const fields = line.split(/\s+/);
      const marker = fields[0].startsWith('@') ? fields.shift() : undefined;
      if (marker === '@cert-authority') continue;
      const [patterns, type, blob] = fields;
      if (!patterns || !type || !blob) continue;
      const names = patterns.split(',');
      const negated = names.some((p) => p.startsWith('!') && patternMatches(p.slice(1), name));
      if (negated || !names.some((p) => !p.startsWith('!') && patternMatches(p, name))) continue;
      if (marker === '@revoked') {
        if (blob === key) return { status: 'changed', file, line: index + 1 };
        continue;
      }
      if (blob === key) return { status: 'known' };
      // A different key of the same type is a changed key; a key of another type means the host is known.
      if (type === keyType) changed ??= { status: 'changed', file, line: index + 1 };
      else if (!otherType) otherType = { file, line: index + 1, knownTypes: [type] };
      else if (!otherType.knownTypes.includes(type)) otherType.knownTypes.push(type);
    }
  }
  return changed ?? (otherType ? { status: 'other-type', ...otherType } : { status: 'unknown' });
}

/** The key types known_hosts holds for a host, to ask the server for those first (as OpenSSH orders HostKeyAlgorithms). */
export function knownKeyTypes(files: string[], host: string, port: number): string[] {
  const name = knownHostsName(host, port);
  const types: string[] = [];
  for (const file of files) {
    if (!existsSync(file)) continue;
    for (const raw of readFileSync(file, 'utf8').split(/\r?\n/)) {
      const fields = raw.trim().split(/\s+/);
      if (!fields[0] || fields[0].startsWith('#') || fields[0].startsWith('@')) continue;
      const [patterns, type] = fields;
      if (!type || types.includes(type)) continue;
      const names = patterns.split(',');
      if (names.some((p) => p.startsWith('!') && patternMatches(p.slice(1), name))) continue;
      if (names.some((p) => !p.startsWith('!') && patternMatches(p, name))) types.push(type);
    }
  }
  return types;
}

export function addKnownHost(file: string, host: string, port: number, keyType: string, keyBlob: Buffer): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  appendFileSync(file, `${knownHostsName(host, port)} ${keyType} ${keyBlob.toString('base64')}\n`, { mode: 0o600 });
}

/** The key type written in known_hosts, read from the blob's own header (ssh-ed25519, ecdsa-sha2-nistp256, ...). */
export function keyTypeOf(keyBlob: Buffer): string {
  const length = keyBlob.readUInt32BE(0);
  return keyBlob.subarray(4, 4 + length).toString('ascii');
}
