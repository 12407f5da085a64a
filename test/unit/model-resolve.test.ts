// The resolution chain of src/core/models/: a temp Hugging Face cache laid out as huggingface_hub writes it
// (blobs, snapshots linking to them, refs/main), and a stand-in Hub on loopback that answers as the Hub does:
// `/<org>/<name>/resolve/main/config.json`, 401 GatedRepo without the right token, 404 EntryNotFound, and one
// route that never answers. Expected shapes come from the fixture files' own keys.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { execFileSync } from 'node:child_process';
import { loadConfig } from '../../src/core/config';
import type { ModelSpec } from '../../src/core/config/model';
import { listModels, lookupModel } from '../../src/core/estimate/catalog';
import { estimateConfig } from '../../src/core/estimate/config-estimate';
import { catalogChecks } from '../../src/core/estimate/config-checks';
import { findCachedConfig, hfHubCacheDir, hfToken, repoFolderName } from '../../src/core/models/hf-cache';
import { HostCacheStore, parseHostCacheReport, readHostCache, readRunHostCache } from '../../src/core/models/host-cache';
import { LocalTransport } from '../../src/core/transport/local';
import { hubCacheFile } from '../../src/core/models/hub-cache';
import { describeProvenance, resolveShape, type ResolveOptions, type ShapeResolution } from '../../src/core/models/resolve-shape';

/**
 * Two real config.json files of models the catalog does not know (the catalog grows, so this is checked, not
 * assumed): test/fixtures/hf/ (the HF-parser's fixtures, SOURCE.md there) first, then test/fixtures/models/.
 */
function pickFixtures(): { id: string; text: string }[] {
  const found: { id: string; text: string }[] = [];
  for (const root of [join(__dirname, '..', 'fixtures', 'hf'), join(__dirname, '..', 'fixtures', 'models')]) {
    let names: string[] = [];
    try {
      names = readdirSync(root).sort();
    } catch {
      continue;
    }
    for (const name of names) {
      const file = name.endsWith('.config.json') ? join(root, name) : join(root, name, 'config.json');
      const id = name.replace(/\.config\.json$/, '').replace('--', '/');
      if (!existsSync(file) || lookupModel(id).ok || found.some((f) => f.id === id)) continue;
      const text = readFileSync(file, 'utf8');
      const c = JSON.parse(text) as Record<string, unknown>;
      // A plain decoder at the top level: its keys are what the test compares against.
      if (typeof c.num_hidden_layers === 'number' && typeof c.hidden_size === 'number' && !c.quantization_config && !c.text_config) found.push({ id, text });
    }
  }
  assert.ok(found.length >= 2, 'two fixture configs of models outside the catalog');
  return found.slice(0, 2);
}
const [A, B] = pickFixtures();
const keys = (text: string) => JSON.parse(text) as Record<string, number>;

const tmp = mkdtempSync(join(tmpdir(), 'wattbench-resolve-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** Writes `id`'s snapshot the way huggingface_hub does: the file in blobs/, a relative symlink in snapshots/. */
function cacheSnapshot(cacheDir: string, id: string, revision: string, config: string, mtime?: Date): string {
  const repo = join(cacheDir, repoFolderName(id));
  const blob = `blob-${revision}`;
  mkdirSync(join(repo, 'blobs'), { recursive: true });
  mkdirSync(join(repo, 'snapshots', revision), { recursive: true });
  writeFileSync(join(repo, 'blobs', blob), config);
  symlinkSync(join('..', '..', 'blobs', blob), join(repo, 'snapshots', revision, 'config.json'));
  if (mtime) utimesSync(join(repo, 'blobs', blob), mtime, mtime);
  return join(repo, 'snapshots', revision, 'config.json');
}

function setRefsMain(cacheDir: string, id: string, revision: string): void {
  mkdirSync(join(cacheDir, repoFolderName(id), 'refs'), { recursive: true });
  writeFileSync(join(cacheDir, repoFolderName(id), 'refs', 'main'), revision); // no newline, as huggingface_hub writes it
}

function shapeOk(r: ShapeResolution): Extract<ShapeResolution, { ok: true }> {
  assert.ok(r.ok, r.ok ? '' : r.message);
  return r;
}

function assertShapeOf(r: ShapeResolution, configText: string): void {
  const c = keys(configText);
  const { shape } = shapeOk(r);
  assert.equal(shape.layers, c.num_hidden_layers);
  assert.equal(shape.hidden, c.hidden_size);
  assert.equal(shape.heads, c.num_attention_heads);
  assert.equal(shape.kvHeads, c.num_key_value_heads);
}

// ------------------------------------------------------------------------------------------ the stand-in Hub

const TOKEN = 'hf_test_token_0123456789';
const seen: { url: string; authorization?: string }[] = [];
let hub: Server;
let endpoint: string;
const hanging: ServerResponse[] = [];

function answer(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': status === 200 ? 'application/json' : 'text/plain', ...headers });
  res.end(body);
}

function route(req: IncomingMessage, res: ServerResponse): void {
  seen.push({ url: req.url ?? '', authorization: req.headers.authorization });
  const auth = req.headers.authorization;
  switch (req.url) {
    case `/${A.id}/resolve/main/config.json`:
      return answer(res, 200, A.text);
    case '/renamed/Old-Name/resolve/main/config.json':
      // The Hub redirects a renamed repo with a relative Location.
      return answer(res, 307, 'Temporary Redirect', { location: `/${A.id}/resolve/main/config.json` });
    case '/gated-org/Gated-7B/resolve/main/config.json':
      if (auth === `Bearer ${TOKEN}`) return answer(res, 200, B.text);
      // Anonymous: 401; a token without access: 403. Both carry X-Error-Code GatedRepo.
      return answer(res, auth ? 403 : 401, 'Access to model gated-org/Gated-7B is restricted.', {
        'x-error-code': 'GatedRepo',
        'x-error-message': 'Access to model gated-org/Gated-7B is restricted and you are not in the authorized list.',
      });
    case '/slow/Never-Answers/resolve/main/config.json':
      hanging.push(res);
      return;
    default:
      return answer(res, 404, 'Entry not found', { 'x-error-code': 'EntryNotFound', 'x-error-message': 'Entry not found' });
  }
}

before(async () => {
  hub = createServer(route);
  await new Promise<void>((resolve) => hub.listen(0, '127.0.0.1', resolve));
  endpoint = `http://127.0.0.1:${(hub.address() as AddressInfo).port}`;
});
after(async () => {
  for (const res of hanging) res.destroy();
  hub.closeAllConnections();
  await new Promise((resolve) => hub.close(resolve));
});

let n = 0;
/** A fresh home, HF cache and storage per test, with the stand-in Hub as HF_ENDPOINT. */
function setup(extraEnv: Record<string, string> = {}): { options: ResolveOptions; cacheDir: string; storage: string; home: string } {
  const home = join(tmp, `home-${++n}`);
  const cacheDir = join(home, '.cache', 'huggingface', 'hub');
  const storage = join(home, 'global-storage', 'hf');
  mkdirSync(cacheDir, { recursive: true });
  return { home, cacheDir, storage, options: { env: { HF_ENDPOINT: endpoint, ...extraEnv }, home, hubCacheDir: storage, hostCaches: [], fetchHub: true, timeoutMs: 2000 } };
}

const spec = (id: string, more: Partial<ModelSpec> = {}): ModelSpec => ({ id, ...more });

// ------------------------------------------------------------------------------------------ tests

describe('where huggingface_hub keeps things', () => {
  it('HF_HUB_CACHE, else HF_HOME/hub, else XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub', () => {
    assert.equal(hfHubCacheDir({ HF_HUB_CACHE: '/c', HF_HOME: '/h' }, '/home/u'), '/c');
    assert.equal(hfHubCacheDir({ HF_HOME: '/h' }, '/home/u'), '/h/hub');
    assert.equal(hfHubCacheDir({ XDG_CACHE_HOME: '/x' }, '/home/u'), '/x/huggingface/hub');
    assert.equal(hfHubCacheDir({}, '/home/u'), '/home/u/.cache/huggingface/hub');
  });

  it('the token: HF_TOKEN, else HUGGING_FACE_HUB_TOKEN, else $HF_HOME/token', () => {
    const hfHome = join(tmp, 'token-home');
    mkdirSync(hfHome, { recursive: true });
    writeFileSync(join(hfHome, 'token'), 'hf_from_file\n');
    assert.equal(hfToken({ HF_TOKEN: 'a', HUGGING_FACE_HUB_TOKEN: 'b', HF_HOME: hfHome })?.token, 'a');
    assert.equal(hfToken({ HUGGING_FACE_HUB_TOKEN: 'b', HF_HOME: hfHome })?.token, 'b');
    assert.deepEqual(hfToken({ HF_HOME: hfHome }), { token: 'hf_from_file', from: join(hfHome, 'token') });
    assert.equal(hfToken({ HF_HOME: join(tmp, 'nowhere') }), undefined);
  });

  it('prefers the snapshot refs/main names, else the newest snapshot with a config.json', () => {
    const cacheDir = join(tmp, 'layout', 'hub');
    const id = A.id;
    const older = cacheSnapshot(cacheDir, id, 'aaaa1111', A.text, new Date('2025-01-01'));
    const newer = cacheSnapshot(cacheDir, id, 'bbbb2222', B.text, new Date('2025-06-01'));
    assert.equal(findCachedConfig(cacheDir, id)?.path, newer, 'without refs/main: the newest');
    setRefsMain(cacheDir, id, 'aaaa1111');
    assert.deepEqual(findCachedConfig(cacheDir, id), { path: older, revision: 'aaaa1111', fromMain: true });
  });
});

describe('resolving a model the catalog does not know', () => {
  it('catalog models need no lookup', async () => {
    const r = shapeOk(await resolveShape(spec(listModels()[0]!.id), { ...setup().options, env: {}, fetchHub: false }));
    assert.equal(r.provenance.kind, 'catalog');
  });

  it('from the local Hugging Face cache, saying which file', async () => {
    const { options, cacheDir } = setup();
    const path = cacheSnapshot(cacheDir, A.id, 'c0ffee', A.text);
    setRefsMain(cacheDir, A.id, 'c0ffee');
    const r = await resolveShape(spec(A.id), options);
    assertShapeOf(r, A.text);
    assert.deepEqual(shapeOk(r).provenance, { kind: 'local', where: path });
    assert.equal(describeProvenance(shapeOk(r).provenance), `shape from config.json in the local Hugging Face cache: ${path}`);
    assert.equal(seen.filter((s) => s.url.includes(A.id)).length, 0, 'the Hub was not asked');
  });

  it('HF_HUB_CACHE points the lookup elsewhere', async () => {
    const other = join(tmp, 'elsewhere-hub');
    const path = cacheSnapshot(other, B.id, 'rev1', B.text);
    const { options } = setup({ HF_HUB_CACHE: other });
    const r = await resolveShape(spec(B.id), { ...options, fetchHub: false });
    assertShapeOf(r, B.text);
    assert.equal(shapeOk(r).provenance.where, path);
  });

  it('model.config: a model directory, relative to the config file', async () => {
    const { options, home } = setup();
    const dir = join(home, 'project', 'weights', 'my-finetune');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'config.json'), B.text);
    const r = await resolveShape(spec('my-org/my-finetune', { config: 'weights/my-finetune' }), { ...options, baseDir: join(home, 'project') });
    assertShapeOf(r, B.text);
    assert.deepEqual(shapeOk(r).provenance, { kind: 'local', where: join(dir, 'config.json') });
    const missing = await resolveShape(spec('my-org/x', { config: 'nope' }), { ...options, baseDir: join(home, 'project') });
    assert.ok(!missing.ok && missing.message.includes(join(home, 'project', 'nope')), JSON.stringify(missing));
  });

  it('a local path as model.id', async () => {
    const { options, home } = setup();
    const dir = join(home, 'models', 'qwen14');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'config.json'), A.text);
    const r = await resolveShape(spec(dir), { ...options, fetchHub: false });
    assertShapeOf(r, A.text);
    assert.equal(shapeOk(r).provenance.kind, 'local');
  });

  it('the config\'s own keys win over the file', async () => {
    const { options, cacheDir } = setup();
    cacheSnapshot(cacheDir, A.id, 'r', A.text);
    const r = shapeOk(await resolveShape(spec(A.id, { dtype: 'fp8', kvHeads: 4 }), options));
    assert.equal(r.shape.dtype, 'fp8');
    assert.equal(r.shape.kvHeads, 4);
    assert.equal(r.shape.layers, keys(A.text).num_hidden_layers);
  });

  it('from a GPU host\'s recorded cache', async () => {
    const { options, home } = setup();
    const store = new HostCacheStore(join(home, 'global-storage', 'host-hf-caches.json'));
    const path = `/data/hf/hub/${repoFolderName(B.id)}/snapshots/abc/config.json`;
    store.record('gpu-a100', parseHostCacheReport(JSON.stringify({ cache_dir: '/data/hf/hub', models: [{ id: B.id, revision: 'abc', path, config: JSON.parse(B.text) }] })));
    const r = await resolveShape(spec(B.id), { ...options, hostCaches: new HostCacheStore(store.file).all(), fetchHub: false });
    assertShapeOf(r, B.text);
    assert.equal(shapeOk(r).provenance.kind, 'host-cache');
    assert.match(shapeOk(r).provenance.where, new RegExp(`^gpu-a100:${path.replace(/[.]/g, '\\.')} \\(recorded `));
  });

  it('from the Hub, kept for offline use, then from that copy with the Hub unreachable', async () => {
    const { options, storage } = setup();
    const r = await resolveShape(spec(A.id), options);
    assertShapeOf(r, A.text);
    assert.deepEqual(shapeOk(r).provenance, { kind: 'hub', where: `${endpoint}/${A.id}/resolve/main/config.json` });
    const kept = JSON.parse(readFileSync(hubCacheFile(storage, A.id), 'utf8')) as { config: unknown };
    assert.deepEqual(kept.config, JSON.parse(A.text));
    const before = seen.length;
    const again = await resolveShape(spec(A.id), { ...options, env: { HF_ENDPOINT: 'http://127.0.0.1:9' }, fetchHub: false });
    assertShapeOf(again, A.text);
    assert.equal(shapeOk(again).provenance.kind, 'hub-cache');
    assert.equal(seen.length, before, 'offline: nothing was asked');
  });

  it('follows the Hub\'s redirect of a renamed repo', async () => {
    const r = await resolveShape(spec('renamed/Old-Name'), setup().options);
    assertShapeOf(r, A.text);
  });

  it('a gated model: anonymous 401 says how to give a token; the right Bearer token gets it', async () => {
    const { options } = setup();
    const denied = await resolveShape(spec('gated-org/Gated-7B'), options);
    assert.ok(!denied.ok);
    assert.match(denied.message, /gated-org\/Gated-7B is a gated model .*HTTP 401/);
    assert.match(denied.message, /HF_TOKEN/);
    assert.match(denied.message, new RegExp(`accept its terms at ${endpoint}/gated-org/Gated-7B`));
    assert.equal(seen.at(-1)?.authorization, undefined);

    const wrong = await resolveShape(spec('gated-org/Gated-7B'), { ...options, token: 'hf_wrong' });
    assert.ok(!wrong.ok && /HTTP 403/.test(wrong.message) && /has no access/.test(wrong.message), JSON.stringify(wrong));

    const allowed = await resolveShape(spec('gated-org/Gated-7B'), { ...options, env: { ...options.env, HF_TOKEN: TOKEN } });
    assertShapeOf(allowed, B.text);
    assert.equal(seen.at(-1)?.authorization, `Bearer ${TOKEN}`);
  });

  it('not on the Hub (404): the message lists every place it looked, and how to give the shape', async () => {
    const { options, cacheDir, storage } = setup();
    const r = await resolveShape(spec('nobody/No-Such-Model'), options);
    assert.ok(!r.ok);
    const url = `${endpoint}/nobody/No-Such-Model/resolve/main/config.json`;
    for (const place of ['built-in catalog', join(cacheDir, 'models--nobody--No-Such-Model'), 'GPU hosts', hubCacheFile(storage, 'nobody/No-Such-Model'), url, 'HTTP 404'])
      assert.ok(r.message.includes(place), `${place} in:\n${r.message}`);
    assert.match(r.message, /give model\.params_b, layers, hidden and heads \(and kv_heads .*\), or model\.config/);
    // catalog, local cache, hosts, kept Hub answers, the Hub.
    assert.equal(r.looked.length, 5);
  });

  it('a Hub that never answers times out, and says so', async () => {
    const { options } = setup();
    const started = Date.now();
    const r = await resolveShape(spec('slow/Never-Answers'), { ...options, timeoutMs: 300 });
    assert.ok(!r.ok);
    assert.match(r.message, /did not answer within 0\.3 s/);
    assert.ok(Date.now() - started < 5000);
  });

  it('offline: nothing asked, every place listed', async () => {
    const { options } = setup();
    const r = await resolveShape(spec('nobody/Offline-Model'), { ...options, fetchHub: false });
    assert.ok(!r.ok);
    assert.match(r.message, /the Hugging Face Hub: .*nobody\/Offline-Model\/resolve\/main\/config\.json \(not asked: offline\)/);
    const unreachable = await resolveShape(spec('nobody/Offline-Model'), { ...options, env: { HF_ENDPOINT: 'http://127.0.0.1:9' } });
    assert.ok(!unreachable.ok);
    assert.match(unreachable.message, /cannot reach 127\.0\.0\.1:9: ECONNREFUSED/);
  });
});

describe('estimateConfig with resolved shapes', () => {
  it('estimates a model the catalog lacks once its shape is resolved, and not before', async () => {
    const loaded = loadConfig(`name: t\ntarget: local\nserver: { sim: true }\nmodel: { id: ${A.id} }\ngpus: { type: H100-SXM-80GB, count: 1 }\nworkload: { input_tokens: 256, output_tokens: 256, num_prompts: 16, concurrency: 4 }\n`);
    assert.ok(loaded.config);
    const without = estimateConfig(loaded.config, loaded.points);
    assert.ok(!without.total && without.error);
    const { options, cacheDir } = setup();
    cacheSnapshot(cacheDir, A.id, 'r', A.text);
    const { shape } = shapeOk(await resolveShape(loaded.config.model, options));
    const withShape = estimateConfig(loaded.config, loaded.points, { shapes: (s) => (s.id === shape.id ? shape : undefined) });
    assert.ok(withShape.total, withShape.error);
    assert.equal(withShape.model?.layers, keys(A.text).num_hidden_layers);
  });
});

describe('a host\'s cache as the agent reports it', () => {
  it('hf-configs through a transport, and the copy a run leaves in its run directory', async () => {
    const { cacheDir, home } = setup();
    cacheSnapshot(cacheDir, A.id, 'r1', A.text);
    // The agent from the sources (the integration test runs the shipped archive over SSH).
    const agentMain = join(__dirname, '..', '..', 'agent', 'wattbench_agent');
    const report = await readHostCache(new LocalTransport({ ...process.env, HF_HUB_CACHE: cacheDir }), agentMain);
    assert.deepEqual(report.models.map((m) => [m.id, m.revision, m.config]), [[A.id, 'r1', JSON.parse(A.text)]]);
    const runDir = join(home, 'run');
    mkdirSync(runDir);
    writeFileSync(join(runDir, 'hf-configs.json'), execFileSync('python3', [agentMain, 'hf-configs', '--cache-dir', cacheDir]));
    assert.deepEqual(await readRunHostCache(new LocalTransport(), runDir), report);
    assert.equal(await readRunHostCache(new LocalTransport(), join(home, 'no-run')), undefined);
  });
});

describe('the config\'s nested keys over a shape found elsewhere', () => {
  const fixture = (name: string) => join(__dirname, '..', 'fixtures', 'hf', name);
  const read = (name: string) => JSON.parse(readFileSync(join(fixture(name), 'config.json'), 'utf8')) as Record<string, Record<string, number> | number>;

  it('MLA and MoE keys override the config.json\'s; what they do not name stays the file\'s', async () => {
    const c = read('deepseek-ai--DeepSeek-V3') as Record<string, number>;
    const { options } = setup();
    const r = await resolveShape(spec('my-org/ds-variant', { config: fixture('deepseek-ai--DeepSeek-V3'), kvLoraRank: c.kv_lora_rank / 2, sharedExperts: c.n_shared_experts + 1 }), options);
    const { shape } = shapeOk(r);
    assert.equal(shape.mla?.kvLoraRank, c.kv_lora_rank / 2);
    assert.equal(shape.mla?.qkRopeHeadDim, c.qk_rope_head_dim);
    assert.equal(shape.moe?.sharedExperts, c.n_shared_experts + 1);
    assert.equal(shape.moe?.expertIntermediate, c.moe_intermediate_size);
    const plain = shapeOk(await resolveShape(spec('my-org/ds-variant', { config: fixture('deepseek-ai--DeepSeek-V3') }), options)).shape;
    assert.equal(plain.mla?.kvLoraRank, c.kv_lora_rank);
    assert.equal(plain.moe?.sharedExperts, c.n_shared_experts);
  });

  it('sliding_window overrides the window and keeps the file\'s count of sliding layers', async () => {
    const text = (read('google--gemma-3-4b-it').text_config ?? read('google--gemma-3-4b-it')) as Record<string, number>;
    const { options } = setup();
    const plain = shapeOk(await resolveShape(spec('my-org/g3', { config: fixture('google--gemma-3-4b-it') }), options)).shape;
    assert.equal(plain.slidingWindow?.window, text.sliding_window);
    const given = shapeOk(await resolveShape(spec('my-org/g3', { config: fixture('google--gemma-3-4b-it'), slidingWindow: text.sliding_window * 2 }), options)).shape;
    assert.deepEqual(given.slidingWindow, { window: text.sliding_window * 2, layers: plain.slidingWindow!.layers });
  });
});

describe('catalog checks and the shape chain', () => {
  const configText = `name: t\ntarget: local\nserver: { sim: true }\nmodel: { id: ${A.id} }\ngpus: { type: H100-SXM-80GB, count: 1 }\n`;

  it('a model the chain found gets no unknown-model diagnostic; one it did not find still warns', async () => {
    const { options, cacheDir } = setup();
    cacheSnapshot(cacheDir, A.id, 'r', A.text);
    const { shape } = shapeOk(await resolveShape({ id: A.id }, options));
    const found = loadConfig(configText, { extraChecks: (c, p, src) => catalogChecks(c, p, src, (s) => (s.id === A.id ? shape : undefined)) });
    assert.deepEqual(found.diagnostics.filter((d) => d.code === 'unknown-model'), []);
    const missed = loadConfig(configText, { extraChecks: (c, p, src) => catalogChecks(c, p, src, () => undefined) });
    assert.equal(missed.diagnostics.find((d) => d.code === 'unknown-model')?.severity, 'warning');
  });

  it('without the chain\'s answer, a Hub id is an info (looked up elsewhere), a bare unknown name a warning', () => {
    const hub = loadConfig(configText, { extraChecks: (c, p, src) => catalogChecks(c, p, src) }).diagnostics.find((d) => d.code === 'unknown-model');
    assert.equal(hub?.severity, 'info');
    assert.match(hub!.message, /not in Wattbench's built-in catalog.*looks for its config\.json/);
    const bare = loadConfig(configText.replace(A.id, 'mystery13b'), { extraChecks: (c, p, src) => catalogChecks(c, p, src) }).diagnostics.find((d) => d.code === 'unknown-model');
    assert.equal(bare?.severity, 'warning');
  });
});
