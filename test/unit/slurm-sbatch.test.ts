import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { expandHostlist, parseScontrolJob } from '../../src/core/slurm/sbatch';

describe('Slurm text', () => {
  it('expands hostlists as scontrol prints them', () => {
    assert.deepEqual(expandHostlist('node[0-1]'), ['node0', 'node1']);
    assert.deepEqual(expandHostlist('gpu[01-03,07],login1'), ['gpu01', 'gpu02', 'gpu03', 'gpu07', 'login1']);
    assert.deepEqual(expandHostlist('rack[1-2]-n[8-9]'), ['rack1-n8', 'rack1-n9', 'rack2-n8', 'rack2-n9']);
    assert.deepEqual(expandHostlist('localhost'), ['localhost']);
    assert.deepEqual(expandHostlist('odd[3-1]'), ['odd[3-1]'], 'what it cannot read, it keeps as written');
  });

  it('reads a job line from scontrol show job -o', () => {
    const info = parseScontrolJob('JobId=7 JobName=wb JobState=RUNNING Reason=None ExitCode=0:0 SubmitTime=2026-12-01T04:00:00 StartTime=2026-12-01T04:00:02 EndTime=Unknown NodeList=node[0-1] NumNodes=2-2');
    assert.deepEqual(info, { state: 'RUNNING', reason: undefined, exitCode: '0:0', submitTime: '2026-12-01T04:00:00', startTime: '2026-12-01T04:00:02', endTime: undefined, nodeList: 'node[0-1]', numNodes: 2 });
    assert.equal(parseScontrolJob('slurm_load_jobs error: Invalid job id specified'), undefined);
  });
});
