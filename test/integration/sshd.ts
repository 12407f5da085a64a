/**
 * Real OpenSSH daemons on loopback addresses, one per simulated "GPU host", each with its own host key
 * and its own WATTBENCH_HOME (so each has its own simulated GPUs). Everything lives in a private temp dir
 * and is stopped by PID.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestHost {
  alias: string;
  address: string;
  port: number;
  home: string;
  hostKeyPub: string;
  sshd: ChildProcess;
  configFile: string;
  pidFile: string;
}

export interface SshLab {
  dir: string;
  clientKey: string;
  /** An ssh_config with every host's alias; pass it as `configPath`. */
  sshConfig: string;
  knownHosts: string;
  hosts: Map<string, TestHost>;
  /** The ~ for the client side (its .ssh is not used: everything is in sshConfig). */
  home: string;
  stop(): Promise<void>;
  /** Kills every live SSH session of a host (the daemon keeps listening): a cut connection. */
  cutConnections(alias: string): void;
  stopHost(alias: string): void;
  exec(alias: string, command: string): string;
}

async function freePort(address: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, address, () => {
      const port = (server.address() as { port: number }).port;
      server.close(() => resolve(port));
    });
  });
}

export interface HostSpec {
  alias: string;
  address: string;
  env?: Record<string, string>;
}

export async function startSshLab(specs: HostSpec[], options: { strict?: 'yes' | 'accept-new' | 'ask' } = {}): Promise<SshLab> {
  const dir = mkdtempSync(join(tmpdir(), 'wb-sshlab-'));
  mkdirSync('/run/sshd', { recursive: true });
  const clientKey = join(dir, 'client_ed25519');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', clientKey]);
  const authorized = join(dir, 'authorized_keys');
  writeFileSync(authorized, readFileSync(`${clientKey}.pub`));
  const knownHosts = join(dir, 'known_hosts');
  const hosts = new Map<string, TestHost>();
  const configLines: string[] = [];
  const knownLines: string[] = [];
  for (const spec of specs) {
    const hostDir = join(dir, spec.alias);
    const home = join(hostDir, 'wattbench-home');
    mkdirSync(home, { recursive: true });
    const hostKey = join(hostDir, 'host_ed25519');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', hostKey]);
    const port = await freePort(spec.address);
    const pidFile = join(hostDir, 'sshd.pid');
    const env = { WATTBENCH_HOME: home, ...spec.env };
    const configFile = join(hostDir, 'sshd_config');
    writeFileSync(
      configFile,
      [
        `ListenAddress ${spec.address}:${port}`,
        `HostKey ${hostKey}`,
        `PidFile ${pidFile}`,
        `AuthorizedKeysFile ${authorized}`,
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'PermitRootLogin prohibit-password',
        'StrictModes no',
        'UsePAM no',
        'Subsystem sftp internal-sftp',
        `SetEnv ${Object.entries(env).map(([k, v]) => `${k}=${v}`).join(' ')}`,
        'ClientAliveInterval 5',
        'MaxStartups 50',
        'MaxSessions 50',
        'LogLevel ERROR',
      ].join('\n') + '\n',
    );
    const sshd = spawn('/usr/sbin/sshd', ['-D', '-e', '-f', configFile], { stdio: ['ignore', 'ignore', 'pipe'] });
    let errors = '';
    sshd.stderr!.on('data', (c: Buffer) => (errors += c.toString()));
    const hostKeyPub = readFileSync(`${hostKey}.pub`, 'utf8').trim();
    hosts.set(spec.alias, { alias: spec.alias, address: spec.address, port, home, hostKeyPub, sshd, configFile, pidFile });
    configLines.push(
      `Host ${spec.alias}`,
      `  HostName ${spec.address}`,
      `  Port ${port}`,
      '  User root',
      `  IdentityFile ${clientKey}`,
      `  UserKnownHostsFile ${knownHosts}`,
      `  StrictHostKeyChecking ${options.strict ?? 'yes'}`,
      '',
    );
    const [type, key] = hostKeyPub.split(' ');
    knownLines.push(`[${spec.address}]:${port} ${type} ${key}`);
    await waitForPort(spec.address, port, () => errors);
  }
  const sshConfig = join(dir, 'ssh_config');
  writeFileSync(sshConfig, configLines.join('\n'));
  writeFileSync(knownHosts, knownLines.join('\n') + '\n');

  const lab: SshLab = {
    dir,
    clientKey,
    sshConfig,
    knownHosts,
    hosts,
    home: join(dir, 'client-home'),
    async stop() {
      for (const host of hosts.values()) {
        lab.cutConnections(host.alias);
        host.sshd.kill('SIGTERM');
      }
      await new Promise((r) => setTimeout(r, 200));
      rmSync(dir, { recursive: true, force: true });
    },
    cutConnections(alias) {
      const host = hosts.get(alias)!;
      // The listener's children are the per-connection daemons: killing them drops the TCP connections.
      try {
        execFileSync('pkill', ['-KILL', '-P', String(host.sshd.pid)], { stdio: 'ignore' });
      } catch {
        // no session open at that moment
      }
    },
    stopHost(alias) {
      const host = hosts.get(alias)!;
      // Sessions first: once the listener is gone its children are orphans pkill -P cannot find.
      lab.cutConnections(alias);
      host.sshd.kill('SIGKILL');
    },
    exec(alias, command) {
      const host = hosts.get(alias)!;
      return execFileSync('ssh', ['-F', sshConfig, '-o', 'BatchMode=yes', host.alias, command], { encoding: 'utf8' });
    },
  };
  return lab;
}

async function waitForPort(address: string, port: number, errors: () => string): Promise<void> {
  const { connect } = await import('node:net');
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, address);
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`sshd on ${address}:${port} did not start: ${errors()}`);
}
