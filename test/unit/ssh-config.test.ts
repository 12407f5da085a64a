import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { addKnownHost, checkHostKey, keyTypeOf, knownHostsName, knownKeyTypes } from '../../src/core/transport/known-hosts';
import { shq } from '../../src/core/transport/shell';
import { listConfiguredHosts, parseHostSpec, resolveHost } from '../../src/core/transport/ssh-config';

const home = mkdtempSync(join(tmpdir(), 'wb-sshcfg-'));
after(() => rmSync(home, { recursive: true, force: true }));

/** A key blob the way a server sends it: string type, then key bytes. */
function blob(type: string, bytes = randomBytes(32)): Buffer {
  const t = Buffer.from(type);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(t.length);
  const klen = Buffer.alloc(4);
  klen.writeUInt32BE(bytes.length);
  return Buffer.concat([len, t, klen, bytes]);
}

describe('~/.ssh/config like OpenSSH', () => {
  mkdirSync(join(home, '.ssh', 'config.d'), { recursive: true });
  writeFileSync(join(home, '.ssh', 'config'), 'Include config.d/*\n\nHost gpu-*\n  User ml\n  IdentityFile ~/.ssh/id_gpu\n\nHost *\n  ServerAliveInterval 30\n');
  writeFileSync(join(home, '.ssh', 'config.d', 'lab'), 'Host gpu-a100 a100\n  HostName 10.1.2.3\n  Port 2200\n  ProxyJump bastion\n  StrictHostKeyChecking accept-new\n  UserKnownHostsFile ~/.ssh/lab_known_hosts\n');

  it('follows Include, takes the first value of each setting, and expands ~', () => {
    const s = resolveHost('gpu-a100', { home });
    assert.equal(s.hostName, '10.1.2.3');
    assert.equal(s.port, 2200);
    assert.equal(s.user, 'ml');
    assert.deepEqual(s.identityFiles, [join(home, '.ssh', 'id_gpu')]);
    assert.equal(s.explicitIdentities, true);
    assert.equal(s.proxyJump, 'bastion');
    assert.equal(s.strictHostKeyChecking, 'accept-new');
    assert.deepEqual(s.knownHostsFiles, [join(home, '.ssh', 'lab_known_hosts')]);
    assert.equal(s.serverAliveIntervalS, 30);
  });

  it('lets user@host:port override the config, and defaults like ssh does', () => {
    const s = resolveHost('root@gpu-a100:2222', { home });
    assert.equal(s.user, 'root');
    assert.equal(s.port, 2222);
    const plain = resolveHost('10.9.9.9', { home, username: 'me' });
    assert.equal(plain.port, 22);
    assert.equal(plain.user, 'me');
    assert.equal(plain.strictHostKeyChecking, 'ask');
    assert.deepEqual(plain.identityFiles.map((f) => f.split('/').pop()), ['id_ed25519', 'id_ecdsa', 'id_rsa']);
    assert.deepEqual(parseHostSpec('me@[::1]:2022'), { user: 'me', host: '::1', port: 2022 });
  });

  it('lists the concrete host aliases, not the patterns', () => {
    assert.deepEqual(listConfiguredHosts({ home }), ['gpu-a100', 'a100']);
  });
});

describe('known_hosts', () => {
  const file = join(home, 'known_hosts');
  const key = blob('ssh-ed25519');
  const other = blob('ssh-ed25519');
  const rsa = blob('ssh-rsa');

  it('knows plain, bracketed-port and hashed entries', () => {
    const salt = randomBytes(20);
    const hashed = `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update('[10.0.0.7]:2222').digest('base64')}`;
    writeFileSync(file, `gpu1,10.0.0.5 ssh-ed25519 ${key.toString('base64')}\n${hashed} ssh-ed25519 ${key.toString('base64')}\n`);
    assert.equal(checkHostKey([file], '10.0.0.5', 22, 'ssh-ed25519', key).status, 'known');
    assert.equal(checkHostKey([file], '10.0.0.7', 2222, 'ssh-ed25519', key).status, 'known');
    assert.equal(checkHostKey([file], '10.0.0.7', 22, 'ssh-ed25519', key).status, 'unknown', 'the port is part of the name');
  });

  it('calls a different key of the same type changed, naming the line; another type means a known host, never a new one', () => {
    assert.deepEqual(checkHostKey([file], '10.0.0.5', 22, 'ssh-ed25519', other), { status: 'changed', file, line: 1 });
    // OpenSSH warns "keys of different type are already known for this host" rather than treating it as new.
    assert.deepEqual(checkHostKey([file], '10.0.0.5', 22, 'ssh-rsa', rsa), { status: 'other-type', file, line: 1, knownTypes: ['ssh-ed25519'] });
    assert.deepEqual(knownKeyTypes([file], '10.0.0.5', 22), ['ssh-ed25519']);
    assert.equal(checkHostKey([file], '10.0.0.99', 22, 'ssh-rsa', rsa).status, 'unknown');
  });

  it('matches hashed entries on the lower-cased name, as OpenSSH hashes them', () => {
    const hashedFile = join(home, 'known_hosts_hashed');
    const salt = randomBytes(20);
    // ssh-keygen -H hashes the name OpenSSH looked up, which it lower-cases first.
    const hashed = (name: string) => `|1|${salt.toString('base64')}|${createHmac('sha1', salt).update(name).digest('base64')}`;
    writeFileSync(hashedFile, `${hashed('gpu-node.example.org')} ssh-ed25519 ${key.toString('base64')}\n${hashed('[gpu-node.example.org]:2222')} ssh-ed25519 ${key.toString('base64')}\n`);
    assert.equal(checkHostKey([hashedFile], 'GPU-Node.Example.ORG', 22, 'ssh-ed25519', key).status, 'known');
    assert.equal(checkHostKey([hashedFile], 'GPU-Node.example.org', 2222, 'ssh-ed25519', key).status, 'known');
  });

  it('reads the files OpenSSH reads by default: known_hosts2 and the global ones', () => {
    const s = resolveHost('plain-host', { home, configPath: join(home, 'no-config') });
    assert.deepEqual(s.knownHostsFiles, [join(home, '.ssh', 'known_hosts'), join(home, '.ssh', 'known_hosts2')]);
    assert.deepEqual(s.globalKnownHostsFiles, ['/etc/ssh/ssh_known_hosts', '/etc/ssh/ssh_known_hosts2']);
    const config = join(home, 'cfg-global');
    writeFileSync(config, 'Host g\n  GlobalKnownHostsFile /srv/known_a /srv/known_b\n  ProxyCommand nc -X connect %h %p\n');
    const g = resolveHost('g', { home, configPath: config });
    assert.deepEqual(g.globalKnownHostsFiles, ['/srv/known_a', '/srv/known_b']);
    assert.equal(g.proxyCommand, 'nc -X connect %h %p');
  });

  it('records new hosts the way OpenSSH writes them', () => {
    addKnownHost(file, '10.0.0.9', 2200, keyTypeOf(key), key);
    assert.equal(checkHostKey([file], '10.0.0.9', 2200, 'ssh-ed25519', key).status, 'known');
    assert.equal(knownHostsName('h', 22), 'h');
    assert.equal(knownHostsName('h', 2200), '[h]:2200');
  });
});

describe('shell quoting', () => {
  it('leaves safe words alone and makes everything else one literal word', () => {
    assert.equal(shq('/home/u/.cache/wattbench/runs/abc'), '/home/u/.cache/wattbench/runs/abc');
    assert.equal(shq(''), "''");
    assert.equal(shq("it's $(rm -rf /) `x`; y"), `'it'\\''s $(rm -rf /) \`x\`; y'`);
  });

  it('round-trips through a real shell', () => {
    for (const value of ["a b", "x'; touch /tmp/no; '", '$(id)', '`id`', 'a\nb', '"q"', '*', '~', '-n']) {
      assert.equal(spawnSync('bash', ['-c', `printf %s ${shq(value)}`], { encoding: 'utf8' }).stdout, value);
    }
  });
});
