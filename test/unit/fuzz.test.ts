/**
 * The fuzz campaign (faults/fuzz.ts) at a size the unit suite can afford: 200 configs, 200 event streams
 * and the shell corpus, seed 1, deterministic. Every invariant is asserted at zero; the defects the full
 * run found (D1–D9 in the first faults/fuzz-results.json: YAML aliases, the sweep built before it was
 * counted, ranges past a line's end, NaN/Infinity accepted, events of the wrong shape reaching the summary,
 * unchecked #SBATCH values and setup lines that could swallow the script) are fixed, so each would fail here.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fuzz, unsafeCases, type FindingGroup } from '../../faults/fuzz';

const brief = (groups: FindingGroup[]) => groups.slice(0, 10).map((g) => `${g.count}× ${g.signature}${g.reproducer ? `\n    reproducer: ${g.reproducer.slice(0, 300)}` : ''}`);

test('fuzz: 200 configs, 200 event streams and the shell corpus (seed 1)', { timeout: 120_000 }, async (t) => {
  const report = await fuzz({ configs: 200, streams: 200, seed: 1 });
  assert.equal(report.configs.total, 200);
  assert.equal(report.streams.total, 200);
  assert.ok(report.configs.valid > 20 && report.configs.invalid > 20, `both valid and invalid configs (${report.configs.valid} valid)`);
  assert.ok(report.shell.total > 500, 'the shell corpus ran');

  await t.test('configs: loadConfig and loadWorkspaceConfig never throw', () => assert.deepEqual(brief(report.configs.crashes), []));
  await t.test('configs: every diagnostic has a message and a range inside the text', () => assert.deepEqual(brief(report.configs.unlocated), []));
  await t.test('configs: no errors ⇔ a config whose points expand', () => assert.deepEqual(brief(report.configs.unresolved), []));
  await t.test('configs: an accepted config has finite numbers and a job file that says the same', () => assert.deepEqual(brief(report.configs.nonFinite), []));

  await t.test('streams: EventStream and the Summarizer never throw', () => assert.deepEqual(brief(report.streams.crashes), []));
  await t.test('streams: every problem is located at the start of its line, and the offset resumes after the last one', () => assert.deepEqual(brief(report.streams.unlocated), []));
  await t.test('streams: every summary number is a number, finite or NaN where documented, never negative or infinite', () => assert.deepEqual(brief(report.streams.badNumbers), []));

  await t.test('shell: shq round-trips every string through /bin/sh and bash, byte for byte', () =>
    assert.deepEqual(report.shell.unsafe.filter((u) => u.layer === 'shq'), []));
  await t.test('shell: no payload runs and no config string changes what Wattbench runs or what sbatch reads', () =>
    assert.equal(unsafeCases(report), 0, report.shell.unsafe.map((u) => `${u.field} ${u.layer} ${u.value}: ${u.why}`).slice(0, 20).join('\n')));
  await t.test('shell: every refusal says why', () => assert.deepEqual(report.shell.refusals.filter((r) => !r.message.trim()), []));
});
