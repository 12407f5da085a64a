/**
 * SSH through ssh2, behaving like OpenSSH: effective settings from ~/.ssh/config, ssh-agent and key
 * files, ProxyJump, host keys checked against known_hosts with StrictHostKeyChecking's meanings, and
 * keepalives. One connection per host is reused for every command.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { Duplex } from 'node:stream';
import { Client, utils, type AnyAuthMethod, type ClientChannel, type ConnectConfig, type ServerHostKeyAlgorithm } from 'ssh2';
import { silentLogger, type Logger } from '../util/logger';
import { addKnownHost, checkHostKey, knownHostsName, knownKeyTypes, keyTypeOf } from './known-hosts';
import { resolveHost, type HostSettings } from './ssh-config';
import type { ExecOptions, ExecResult, StreamingExec, Transport } from './types';
import { TransportError } from './types';

export interface SshOptions {
  /** Overrides ~/.ssh/config's StrictHostKeyChecking. */
  strictHostKeyChecking?: HostSettings['strictHostKeyChecking'];
  /** Asked when StrictHostKeyChecking is `ask` and the host is not known. */
  confirmHostKey?: (host: string, fingerprint: string) => Promise<boolean>;
  /** Asked for an encrypted key's passphrase. */
  passphrase?: (keyFile: string) => Promise<string | undefined>;
  configPath?: string;
  home?: string;
  logger?: Logger;
  agentSocket?: string;
  readyTimeoutMs?: number;
  keepaliveIntervalMs?: number;
  /** The hops to reach this host through, overriding its own ProxyJump (the earlier hops of a chain). */
  proxyJump?: string;
}

/** ssh2's host key algorithms, most preferred first. */
const HOST_KEY_ALGORITHMS = ['ssh-ed25519', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521', 'rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'];

/** Asks for the key types known_hosts already has for this host first, as OpenSSH does, so a known host is not met with a new key type. */
function hostKeyAlgorithms(knownTypes: string[]): string[] | undefined {
  if (!knownTypes.length) return undefined;
  const preferred = knownTypes.flatMap((t) => (t === 'ssh-rsa' ? ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'] : [t])).filter((a) => HOST_KEY_ALGORITHMS.includes(a));
  return [...new Set([...preferred, ...HOST_KEY_ALGORITHMS])];
}

/** OpenSSH's ProxyCommand tokens. */
function expandProxyCommand(command: string, s: HostSettings): string {
  return command.replace(/%([%hpnr])/g, (_, c: string) => (c === '%' ? '%' : c === 'h' ? s.hostName : c === 'p' ? String(s.port) : c === 'r' ? s.user : s.alias));
}

export function fingerprint(keyBlob: Buffer): string {
  return `SHA256:${createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '')}`;
}

function describeConnectError(error: Error & { code?: string; level?: string }, where: string): TransportError {
  const code = error.code ?? '';
  if (error.level === 'client-authentication')
    return new TransportError(`SSH login to ${where} failed: the server refused every key tried (ssh-agent and identity files). Add your key to ssh-agent or set IdentityFile in ~/.ssh/config.`, 'auth');
  if (code === 'ECONNREFUSED') return new TransportError(`Cannot reach ${where}: connection refused (is sshd running, and is the port right?)`, 'unreachable');
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return new TransportError(`Cannot reach ${where}: host name not found (check HostName in ~/.ssh/config)`, 'unreachable');
  if (code === 'EHOSTUNREACH' || code === 'ENETUNREACH') return new TransportError(`Cannot reach ${where}: no route to host`, 'unreachable');
  if (/Timed out while waiting for handshake/i.test(error.message)) return new TransportError(`Cannot reach ${where}: timed out waiting for the SSH handshake`, 'timeout');
  return new TransportError(`SSH connection to ${where} failed: ${error.message}`, 'unreachable');
}

export class SshTransport implements Transport {
  readonly label: string;
  private client?: Client;
  private jump?: SshTransport;
  private connecting?: Promise<Client>;
  private closed = false;
  private readonly log: Logger;

  constructor(
    readonly settings: HostSettings,
    private readonly options: SshOptions = {},
  ) {
    this.label = settings.alias === `${settings.hostName}` ? settings.alias : `${settings.alias} (${settings.user}@${settings.hostName}:${settings.port})`;
    this.log = options.logger ?? silentLogger;
  }

  static forHost(spec: string, options: SshOptions = {}): SshTransport {
    const settings = resolveHost(spec, { configPath: options.configPath, home: options.home });
    if (options.proxyJump !== undefined) settings.proxyJump = options.proxyJump || undefined;
    return new SshTransport(settings, { ...options, proxyJump: undefined });
  }

  get where(): string {
    return `${this.settings.alias} (${this.settings.user}@${this.settings.hostName}:${this.settings.port})`;
  }

  /** Connects, or returns the live connection. */
  connect(): Promise<Client> {
    if (this.closed) return Promise.reject(new TransportError(`connection to ${this.where} was closed`, 'disconnected'));
    if (this.client) return Promise.resolve(this.client);
    this.connecting ??= this.open().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  private async authMethods(): Promise<AnyAuthMethod[]> {
    const { user } = this.settings;
    const methods: AnyAuthMethod[] = [];
    const agent = this.options.agentSocket ?? process.env.SSH_AUTH_SOCK;
    if (agent && existsSync(agent)) methods.push({ type: 'agent', username: user, agent });
    for (const file of this.settings.identityFiles) {
      if (!existsSync(file)) {
        if (this.settings.explicitIdentities) this.log.warn(`IdentityFile ${file} for ${this.settings.alias} does not exist`);
        continue;
      }
      const key = readFileSync(file);
      let parsed = utils.parseKey(key);
      let passphrase: string | undefined;
      if (parsed instanceof Error && /encrypted|passphrase/i.test(parsed.message) && this.options.passphrase) {
        passphrase = await this.options.passphrase(file);
        if (passphrase !== undefined) parsed = utils.parseKey(key, passphrase);
      }
      if (parsed instanceof Error) {
        this.log.warn(`skipping key ${file}: ${parsed.message}`);
        continue;
      }
      methods.push({ type: 'publickey', username: user, key, passphrase });
    }
    if (methods.length === 0) methods.push({ type: 'none', username: user });
    return methods;
  }

  private async open(): Promise<Client> {
    const s = this.settings;
    let sock: NodeJS.ReadableStream | undefined;
    let proxyFailure: Promise<TransportError | undefined> | undefined;
    if (s.proxyJump) {
      // `ProxyJump a,b` reaches b through a, then this host through b: the last hop carries the earlier ones.
      const hops = s.proxyJump.split(',').map((h) => h.trim()).filter(Boolean);
      const last = hops[hops.length - 1];
      this.jump = SshTransport.forHost(last, { ...this.options, proxyJump: hops.slice(0, -1).join(',') });
      const jumpClient = await this.jump.connect();
      sock = await new Promise((resolve, reject) =>
        jumpClient.forwardOut('127.0.0.1', 0, s.hostName, s.port, (err, stream) =>
          err ? reject(new TransportError(`ProxyJump ${last} could not reach ${s.hostName}:${s.port}: ${err.message}`, 'unreachable')) : resolve(stream),
        ),
      );
    } else if (s.proxyCommand) ({ socket: sock, failure: proxyFailure } = this.proxyCommandSocket(s.proxyCommand));
    const client = new Client();
    const policy = this.options.strictHostKeyChecking ?? s.strictHostKeyChecking;
    const knownFiles = [...s.knownHostsFiles, ...s.globalKnownHostsFiles];
    const serverHostKey = hostKeyAlgorithms(knownKeyTypes(knownFiles, s.hostName, s.port));
    let hostKeyProblem: TransportError | undefined;
    const config: ConnectConfig = {
      host: s.hostName,
      port: s.port,
      username: s.user,
      sock: sock as never,
      readyTimeout: this.options.readyTimeoutMs ?? (s.connectTimeoutS ? s.connectTimeoutS * 1000 : 20_000),
      keepaliveInterval: this.options.keepaliveIntervalMs ?? (s.serverAliveIntervalS ? s.serverAliveIntervalS * 1000 : 15_000),
      keepaliveCountMax: 3,
      authHandler: (await this.authMethods()) as never,
      ...(serverHostKey && { algorithms: { serverHostKey: serverHostKey as ServerHostKeyAlgorithm[] } }),
      hostVerifier: (key: Buffer, verify: (ok: boolean) => void) => {
        const type = keyTypeOf(key);
        const verdict = checkHostKey(knownFiles, s.hostName, s.port, type, key);
        const print = fingerprint(key);
        if (verdict.status === 'known') return verify(true);
        if (verdict.status === 'other-type' && policy !== 'no') {
          // A known host offering a key of a type we do not hold for it is not a new host: never record it as one.
          hostKeyProblem = new TransportError(
            `${this.where} offered a ${type} host key (${print}), but ${verdict.file}:${verdict.line} knows it by ${verdict.knownTypes.join(', ')} keys only. ` +
              `Check the new key with ssh, then add it (ssh-keyscan -t ${type.replace(/^ssh-/, '')} …) if it is genuine.`,
            'host-key-changed',
          );
          return verify(false);
        }
        if (verdict.status === 'changed') {
          hostKeyProblem = new TransportError(
            `The host key of ${this.where} has CHANGED (now ${type} ${print}); it does not match ${verdict.file}:${verdict.line}. ` +
              `This may be an attack, or the host was reinstalled. If you know it was, remove the old key (ssh-keygen -R "${knownHostsName(s.hostName, s.port)}") and connect again.`,
            'host-key-changed',
          );
          return verify(false);
        }
        const accept = () => {
          try {
            addKnownHost(s.knownHostsFiles[0], s.hostName, s.port, type, key);
          } catch (error) {
            this.log.warn(`could not record the host key in ${s.knownHostsFiles[0]}: ${(error as Error).message}`);
          }
          verify(true);
        };
        if (policy === 'accept-new' || policy === 'no') return accept();
        const refuse = () => {
          hostKeyProblem = new TransportError(
            `${this.where} is not a known host (key ${type} ${print}). Connect once with ssh to check and record its key, ` +
              `or set StrictHostKeyChecking accept-new for it in ~/.ssh/config.`,
            'host-key-unknown',
          );
          verify(false);
        };
        if (policy === 'yes' || !this.options.confirmHostKey) return refuse();
        this.options.confirmHostKey(this.where, `${type} ${print}`).then((ok) => (ok ? accept() : refuse()), refuse);
      },
    };
    return new Promise<Client>((resolve, reject) => {
      let settled = false;
      client.once('ready', () => {
        settled = true;
        this.client = client;
        this.log.info(`connected to ${this.where}`);
        resolve(client);
      });
      client.on('error', (error: Error & { code?: string; level?: string }) => {
        if (!settled) {
          settled = true;
          // A ProxyCommand that died says why better than the handshake it broke.
          const proxied = proxyFailure ? Promise.race([proxyFailure, new Promise<undefined>((r) => setTimeout(r, 1000))]) : Promise.resolve(undefined);
          void proxied.then((problem) => reject(hostKeyProblem ?? problem ?? describeConnectError(error, this.where)));
        } else this.log.warn(`connection to ${this.where}: ${error.message}`);
      });
      client.on('close', () => {
        if (this.client === client) this.client = undefined;
        if (!settled) {
          settled = true;
          reject(hostKeyProblem ?? new TransportError(`Connection to ${this.where} closed during the handshake`, 'disconnected'));
        }
      });
      client.connect(config);
    });
  }

  private async channel(command: string): Promise<ClientChannel> {
    const client = await this.connect();
    return new Promise((resolve, reject) =>
      client.exec(command, (err, channel) => (err ? reject(new TransportError(`cannot run a command on ${this.where}: ${err.message}`, 'disconnected')) : resolve(channel))),
    );
  }

  async exec(command: string, options: ExecOptions = {}): Promise<ExecResult> {
    const channel = await this.channel(command);
    return new Promise((resolve, reject) => {
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let code: number | null = null;
      let signal: string | undefined;
      let timer: NodeJS.Timeout | undefined;
      if (options.timeoutMs)
        timer = setTimeout(() => {
          channel.close();
          reject(new TransportError(`command on ${this.where} timed out after ${options.timeoutMs} ms`, 'timeout'));
        }, options.timeoutMs);
      channel.on('data', (c: Buffer) => out.push(c));
      channel.stderr.on('data', (c: Buffer) => err.push(c));
      channel.on('exit', (c: number | null, s?: string) => {
        code = c;
        signal = s ?? undefined;
      });
      channel.on('close', () => {
        clearTimeout(timer);
        if (code === null && signal === undefined && !this.client)
          reject(new TransportError(`connection to ${this.where} dropped while a command ran`, 'disconnected'));
        else resolve({ code, signal, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() });
      });
      channel.end(options.stdin ?? undefined);
    });
  }

  stream(command: string, onData: (chunk: Buffer) => void, onStderr?: (chunk: Buffer) => void): StreamingExec {
    let channel: ClientChannel | undefined;
    let stopped = false;
    const done = this.channel(command).then(
      (ch) =>
        new Promise<ExecResult>((resolve, reject) => {
          channel = ch;
          if (stopped) ch.close();
          const err: Buffer[] = [];
          let code: number | null = null;
          let signal: string | undefined;
          ch.on('data', onData);
          ch.stderr.on('data', (c: Buffer) => {
            err.push(c);
            onStderr?.(c);
          });
          ch.on('exit', (c: number | null, s?: string) => {
            code = c;
            signal = s ?? undefined;
          });
          ch.on('close', () => {
            if (code === null && signal === undefined && !stopped)
              reject(new TransportError(`connection to ${this.where} dropped`, 'disconnected'));
            else resolve({ code, signal, stdout: '', stderr: Buffer.concat(err).toString() });
          });
          ch.end();
        }),
    );
    return {
      done,
      stop: () => {
        stopped = true;
        channel?.close();
      },
    };
  }

  /** Runs ProxyCommand locally, as OpenSSH does; its stdin and stdout carry the connection. */
  private proxyCommandSocket(command: string): { socket: Duplex; failure: Promise<TransportError | undefined> } {
    const expanded = expandProxyCommand(command, this.settings);
    const child = spawn('/bin/sh', ['-c', expanded], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-2000)));
    const socket = Duplex.from({ readable: child.stdout, writable: child.stdin });
    const problem = (why: string) =>
      new TransportError(`ProxyCommand for ${this.where} (${expanded}) ${why}${stderr.trim() ? `: ${stderr.trim().split('\n').slice(-3).join(' | ')}` : ''}`, 'unreachable');
    const failure = new Promise<TransportError | undefined>((resolve) => {
      child.once('error', (error) => resolve(problem(`could not start: ${error.message}`)));
      child.once('exit', (code, signal) => resolve(this.client ? undefined : problem(`exited (${signal ?? `code ${code}`}) before the SSH handshake`)));
    });
    socket.once('close', () => child.kill());
    return { socket, failure };
  }

  /** Drops the TCP connection without marking the transport closed: the next command reconnects. */
  disconnect(): void {
    this.client?.end();
    this.client = undefined;
  }

  close(): void {
    this.closed = true;
    this.client?.end();
    this.client = undefined;
    this.jump?.close();
  }
}
