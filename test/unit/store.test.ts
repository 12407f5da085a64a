import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { markOrphaned, runsToReattach } from '../../src/core/run/stored';
import { newRunId, readEventsSync, RunStore, type RunMeta } from '../../src/core/store/store';

const root = mkdtempSync(join(tmpdir(), 'wb-store-'));
after(() => rmSync(root, { recursive: true, force: true }));

function meta(id: string, extra: Partial<RunMeta> = {}): RunMeta {
  return { run_id: id, config_name: 'c', target: 'h', status: 'running', started: new Date().toISOString(), points: [], remotes: [], notes: [], ...extra };
}

describe('the workspace results store', () => {
  const store = RunStore.forWorkspace(root);

  it('keeps each run in .wattbench/runs/<id> as plain files', () => {
    const id = newRunId('Llama 8B / H100!');
    assert.match(id, /^\d{8}-\d{6}-llama-8b-h100-[0-9a-f]{4}$/);
    const writer = store.create(meta(id), 'name: c\n');
    writer.appendLines(['{"v":1,"seq":0,"t":1,"type":"log","level":"info","msg":"hi"}']);
    writer.updateMeta({ status: 'ok' });
    writer.close();
    const dir = join(root, '.wattbench', 'runs', id);
    assert.equal(readFileSync(join(dir, 'config.yaml'), 'utf8'), 'name: c\n');
    assert.equal(JSON.parse(readFileSync(join(dir, 'meta.json'), 'utf8')).status, 'ok');
    assert.equal(readEventsSync(dir).length, 1);
    assert.deepEqual(store.list().map((r) => r.id), [id]);
    store.delete(id);
    assert.deepEqual(store.list(), []);
  });

  it('refuses run ids that would leave the store', () => {
    assert.throws(() => store.dirOf('../../etc'), /not a run id/);
    for (const id of ['..', '.', '.hidden', 'a/b', ''])
      assert.throws(() => store.dirOf(id), /not a run id/, id);
  });

  it('takes a run id from its folder, never from a meta.json that names another place', () => {
    const writer = store.create(meta('innocent'), '');
    writer.updateMeta({ run_id: '..' } as Partial<RunMeta>);
    writer.close();
    const record = store.list().find((r) => r.id === 'innocent')!;
    assert.equal(record.meta.run_id, 'innocent');
    markOrphaned(store, record.meta);
    store.delete(record.meta.run_id);
    assert.ok(existsSync(join(root, '.wattbench', 'runs')), 'the store itself is still there');
    assert.equal(store.get('innocent'), undefined);
  });

  it('reattaches single-host runs, sweeps over several hosts and Slurm jobs, and marks runs it cannot follow', () => {
    const handle = { host: 'h', runDir: '/r', pid: 42, offset: 0, nextSeq: 0 };
    store.create(meta('single', { remotes: [handle] }), '').close();
    store.create(meta('multi', { remotes: [{ ...handle, node: 'a' }, { ...handle, node: 'b' }] }), '').close();
    store.create(meta('hosts', { remotes: [{ ...handle, node: 'a' }], hosts: ['a', 'b'] }), '').close();
    store.create(meta('slurm', { remotes: [{ ...handle, pid: undefined, node: 'node-0' }], slurm: { job_id: '7' } }), '').close();
    store.create(meta('done', { status: 'ok', remotes: [handle] }), '').close();
    store.create(meta('copied', { remotes: [handle] }), '').close();
    const { followable, orphaned, foreign } = runsToReattach(store, (dir) => !dir.endsWith('copied'));
    assert.deepEqual(foreign.map((m) => m.run_id), ['copied'], 'a run this machine did not start is never followed nor marked');
    const ofKind = (kind: string) => followable.filter((f) => f.kind === kind).map((f) => f.meta.run_id);
    assert.deepEqual(ofKind('single'), ['single']);
    assert.deepEqual(ofKind('multihost'), ['hosts']);
    assert.deepEqual(ofKind('slurm'), ['slurm']);
    assert.deepEqual(orphaned.map((m) => m.run_id), ['multi']);
    markOrphaned(store, orphaned[0]);
    const marked = store.get('multi')!.meta;
    assert.equal(marked.status, 'lost');
    assert.match(marked.error ?? '', /may still be running on h/);
  });
});
