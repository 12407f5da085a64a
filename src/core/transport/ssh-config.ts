/**
 * Effective SSH settings for a host, the way OpenSSH computes them: ~/.ssh/config with its Include
 * lines expanded, then `user@host:port` syntax on top. The `ssh-config` package does the matching.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, isAbsolute, join } from 'node:path';
import type * as SshConfigModule from 'ssh-config' with { 'resolution-mode': 'import' };

// The package ships CommonJS for require() but only ESM typings; take the types from the latter.
const { parse: parseSshConfig } = require('ssh-config') as typeof SshConfigModule;

export interface HostSettings {
  /** What the user wrote: an alias or user@host:port. */
  alias: string;
  hostName: string;
  port: number;
  user: string;
  identityFiles: string[];
  /** Whether IdentityFile came from the config (then only those are tried, like IdentitiesOnly). */
  explicitIdentities: boolean;
  proxyJump?: string;
  /** A command whose stdin/stdout carry the connection (`%h`, `%p`, `%r`, `%n`, `%%` expanded). */
  proxyCommand?: string;
  /** Where new host keys are recorded (the first) and looked up, as UserKnownHostsFile. */
  knownHostsFiles: string[];
  /** Looked up too, never written: GlobalKnownHostsFile. */
  globalKnownHostsFiles: string[];
  strictHostKeyChecking: 'yes' | 'no' | 'ask' | 'accept-new';
  connectTimeoutS?: number;
  serverAliveIntervalS?: number;
}

const expandHome = (path: string, home: string) => path.replace(/^~(?=$|\/)/, home);

/** Reads a config file with every `Include` replaced by the files it names (globs in the last part). */
export function readSshConfigText(path: string, home = homedir(), depth = 0): string {
  if (depth > 16 || !existsSync(path)) return '';
  const lines = readFileSync(path, 'utf8').split(/\r?\n/);
  return lines
    .map((line) => {
      const match = /^\s*Include\s+(.+)$/i.exec(line);
      if (!match) return line;
      return match[1]
        .trim()
        .split(/\s+/)
        .flatMap((pattern) => {
          const full = expandHome(pattern, home);
          return globFiles(isAbsolute(full) ? full : join(home, '.ssh', full));
        })
        .map((file) => readSshConfigText(file, home, depth + 1))
        .join('\n');
    })
    .join('\n');
}

function globFiles(pattern: string): string[] {
  const dir = dirname(pattern);
  const name = basename(pattern);
  if (!/[*?]/.test(name)) return existsSync(pattern) ? [pattern] : [];
  if (!existsSync(dir)) return [];
  const re = new RegExp(`^${name.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
  return readdirSync(dir).filter((f) => re.test(f)).sort().map((f) => join(dir, f));
}

/** Splits `user@host:port` (or `user@[v6addr]:port`); plain aliases come back as the host. */
export function parseHostSpec(spec: string): { user?: string; host: string; port?: number } {
  const at = spec.lastIndexOf('@');
  const user = at > 0 ? spec.slice(0, at) : undefined;
  let rest = at > 0 ? spec.slice(at + 1) : spec;
  let port: number | undefined;
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(rest);
  if (bracketed) {
    rest = bracketed[1];
    port = bracketed[2] ? Number(bracketed[2]) : undefined;
  } else {
    const colon = /^([^:]+):(\d+)$/.exec(rest);
    if (colon) {
      rest = colon[1];
      port = Number(colon[2]);
    }
  }
  return { user, host: rest, port };
}

export function resolveHost(spec: string, options: { configPath?: string; home?: string; username?: string } = {}): HostSettings {
  const home = options.home ?? homedir();
  const configPath = options.configPath ?? join(home, '.ssh', 'config');
  const { user, host, port } = parseHostSpec(spec);
  const computed = parseSshConfig(readSshConfigText(configPath, home)).compute(host, { ignoreCase: true }) as Record<string, string | string[]>;
  // With ignoreCase the package lowercases directive names too.
  const get = (key: string): string | undefined => {
    const v = computed[key.toLowerCase()];
    return Array.isArray(v) ? v[0] : v;
  };
  const list = (key: string): string[] => {
    const v = computed[key.toLowerCase()];
    return v === undefined ? [] : Array.isArray(v) ? v : [v];
  };
  const identities = list('IdentityFile').map((f) => expandHome(f, home));
  const strict = (get('StrictHostKeyChecking') ?? 'ask').toLowerCase();
  const files = (key: string) => list(key).flatMap((v) => v.split(/\s+/)).filter((f) => f && f.toLowerCase() !== 'none').map((f) => expandHome(f, home));
  const knownHosts = files('UserKnownHostsFile');
  const globalKnownHosts = list('GlobalKnownHostsFile').length ? files('GlobalKnownHostsFile') : ['/etc/ssh/ssh_known_hosts', '/etc/ssh/ssh_known_hosts2'];
  const proxyCommand = get('ProxyCommand');
  const hostName = (get('HostName') ?? host).replace(/%h/g, host);
  const proxyJump = get('ProxyJump');
  return {
    alias: spec,
    hostName,
    port: port ?? Number(get('Port') ?? 22),
    user: user ?? get('User') ?? options.username ?? process.env.USER ?? 'root',
    identityFiles: identities.length ? identities : ['id_ed25519', 'id_ecdsa', 'id_rsa'].map((f) => join(home, '.ssh', f)),
    explicitIdentities: identities.length > 0,
    proxyJump: proxyJump && proxyJump.toLowerCase() !== 'none' ? proxyJump : undefined,
    proxyCommand: proxyCommand && proxyCommand.toLowerCase() !== 'none' ? proxyCommand : undefined,
    // OpenSSH's default UserKnownHostsFile is both of these.
    knownHostsFiles: knownHosts.length ? knownHosts : [join(home, '.ssh', 'known_hosts'), join(home, '.ssh', 'known_hosts2')],
    globalKnownHostsFiles: globalKnownHosts,
    strictHostKeyChecking: strict === 'yes' || strict === 'no' || strict === 'accept-new' ? strict : strict === 'off' || strict === 'false' ? 'no' : 'ask',
    connectTimeoutS: get('ConnectTimeout') ? Number(get('ConnectTimeout')) : undefined,
    serverAliveIntervalS: get('ServerAliveInterval') ? Number(get('ServerAliveInterval')) : undefined,
  };
}

/** Host aliases declared in ~/.ssh/config (no wildcards), for the Hosts view and pickers. */
export function listConfiguredHosts(options: { configPath?: string; home?: string } = {}): string[] {
  const home = options.home ?? homedir();
  const text = readSshConfigText(options.configPath ?? join(home, '.ssh', 'config'), home);
  const hosts = new Set<string>();
  for (const line of text.split('\n')) {
    const match = /^\s*Host\s+(.+)$/i.exec(line);
    if (match) for (const h of match[1].trim().split(/\s+/)) if (!/[*?!]/.test(h)) hosts.add(h);
  }
  return [...hosts];
}
