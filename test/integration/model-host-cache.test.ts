/**
 * A model only the GPU host has: its Hugging Face cache (real OpenSSH on loopback, the real agent) holds a
 * snapshot; reading it as Test Host Connection does records it here, and the estimate then finds the shape there.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { lookupModel } from '../../src/core/estimate/catalog';
import { HostCacheStore, readHostCache } from '../../src/core/models/host-cache';
import { resolveShape } from '../../src/core/models/resolve-shape';
import { installAgent } from '../../src/core/run/remote';
import { SshTransport } from '../../src/core/transport/ssh';
import { AGENT } from './helpers';
import { startSshLab, type SshLab } from './sshd';

// A fine-tune keeps its base's config.json: the real Qwen2.5-7B one (test/fixtures/models/SOURCE.md).
const ID = 'acme/qwen2.5-7b-support-ft';
const CONFIG = readFileSync(join(__dirname, '..', 'fixtures', 'models', 'Qwen--Qwen2.5-7B.config.json'), 'utf8');

let lab: SshLab;
let transport: SshTransport;
const tmp = mkdtempSync(join(tmpdir(), 'wb-hostcache-'));
const hostCache = join(tmp, 'host-hf', 'hub');

describe('a GPU host\'s Hugging Face cache', () => {
  before(async () => {
    const repo = join(hostCache, `models--${ID.replace('/', '--')}`);
    mkdirSync(join(repo, 'blobs'), { recursive: true });
    mkdirSync(join(repo, 'snapshots', '5a1b2c3'), { recursive: true });
    mkdirSync(join(repo, 'refs'), { recursive: true });
    writeFileSync(join(repo, 'blobs', 'cfg'), CONFIG);
    symlinkSync('../../blobs/cfg', join(repo, 'snapshots', '5a1b2c3', 'config.json'));
    writeFileSync(join(repo, 'refs', 'main'), '5a1b2c3');
    lab = await startSshLab([{ alias: 'gpu-hf', address: '127.0.0.6', env: { HF_HUB_CACHE: hostCache } }]);
    transport = SshTransport.forHost('gpu-hf', { configPath: lab.sshConfig, home: lab.home });
  });
  after(async () => {
    transport?.close();
    await lab?.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  it('is read over SSH, recorded, and gives the estimate its shape offline', async () => {
    assert.ok(!lookupModel(ID).ok, 'the catalog does not know the model');
    const agent = await installAgent(transport, AGENT);
    const store = new HostCacheStore(join(tmp, 'global-storage', 'host-hf-caches.json'));
    store.record('gpu-hf', await readHostCache(transport, agent.path));
    transport.close();

    const r = await resolveShape({ id: ID }, { env: { HF_HUB_CACHE: join(tmp, 'empty-local-cache') }, hostCaches: store.all(), fetchHub: false });
    assert.ok(r.ok, r.ok ? '' : r.message);
    const c = JSON.parse(CONFIG) as Record<string, number>;
    assert.equal(r.provenance.kind, 'host-cache');
    assert.match(r.provenance.where, new RegExp(`^gpu-hf:${join(hostCache, `models--acme--qwen2.5-7b-support-ft/snapshots/5a1b2c3/config.json`).replace(/\./g, '\\.')} `));
    assert.deepEqual([r.shape.layers, r.shape.hidden, r.shape.heads, r.shape.kvHeads], [c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.num_key_value_heads]);
  });
});
