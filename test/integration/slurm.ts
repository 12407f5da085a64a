/**
 * A one-machine Slurm cluster started by the tests: private munged, slurmctld and slurmd, fake GPUs as
 * GRES (character devices), everything under a temp dir and stopped by PID. See shared/TESTING.md.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';

export interface SlurmCluster {
  dir: string;
  conf: string;
  env: Record<string, string>;
  stop(): Promise<void>;
}

/** `nodes` > 1 runs one slurmd per node on loopback addresses 127.0.0.1, .2, … (each with its own port and spool). */
export async function startSlurm(nodes = 1): Promise<SlurmCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'wb-slurm-'));
  chmodSync(dir, 0o755);
  const munge = join(dir, 'munge');
  mkdirSync(munge, { recursive: true, mode: 0o755 });
  chmodSync(munge, 0o755);
  const key = join(munge, 'munge.key');
  writeFileSync(key, Buffer.alloc(1024, 7), { mode: 0o400 });
  const socket = join(munge, 'munge.socket.2');
  const processes: ChildProcess[] = [];
  const munged = spawn('munged', ['-F', '--force', `--key-file=${key}`, `--socket=${socket}`, `--pid-file=${join(munge, 'munged.pid')}`, `--log-file=${join(munge, 'munged.log')}`, `--seed-file=${join(munge, 'seed')}`], { stdio: 'ignore' });
  processes.push(munged);
  const devices = join(dir, 'dev');
  mkdirSync(devices);
  for (const i of [0, 1]) execFileSync('mknod', [join(devices, `nvidia${i}`), 'c', '1', '3']);
  const names = nodes === 1 ? ['localhost'] : Array.from({ length: nodes }, (_, i) => `node${i}`);
  const state = join(dir, 'state');
  const spool = join(dir, 'spool');
  mkdirSync(state);
  mkdirSync(spool);
  const conf = join(dir, 'slurm.conf');
  writeFileSync(
    conf,
    [
      'ClusterName=wattbench',
      'SlurmctldHost=localhost',
      'SlurmUser=root',
      'AuthType=auth/munge',
      'CredType=cred/munge',
      `AuthInfo=socket=${socket}`,
      'MailProg=/bin/true',
      `StateSaveLocation=${state}`,
      `SlurmdSpoolDir=${spool}/%n`,
      `SlurmctldPidFile=${join(dir, 'slurmctld.pid')}`,
      `SlurmdPidFile=${join(dir, 'slurmd-%n.pid')}`,
      `SlurmctldLogFile=${join(dir, 'slurmctld.log')}`,
      `SlurmdLogFile=${join(dir, 'slurmd-%n.log')}`,
      'SlurmctldPort=16817',
      'SlurmdPort=16818',
      'ProctrackType=proctrack/linuxproc',
      'TaskPlugin=task/none',
      'JobAcctGatherType=jobacct_gather/none',
      'AccountingStorageType=accounting_storage/none',
      'JobCompType=jobcomp/filetxt',
      `JobCompLoc=${join(dir, 'jobcomp.log')}`,
      'SelectType=select/cons_tres',
      'SelectTypeParameters=CR_Core',
      'ReturnToService=2',
      'GresTypes=gpu',
      'KillWait=3',
      'MinJobAge=600',
      'InactiveLimit=0',
      'OverTimeLimit=0',
      ...names.map((n, i) => `NodeName=${n} NodeAddr=127.0.0.${i + 1} Port=${16818 + i} CPUs=2 RealMemory=2000 Gres=gpu:fake:2 State=UNKNOWN`),
      'PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP',
      '',
    ].join('\n'),
  );
  writeFileSync(join(dir, 'gres.conf'), `AutoDetect=off\n${names.map((n) => `NodeName=${n} Name=gpu Type=fake File=${devices}/nvidia[0-1]\n`).join('')}`);
  for (const n of names) mkdirSync(join(spool, n));
  const env = { SLURM_CONF: conf };
  await waitFor(() => spawnSync('test', ['-S', socket]).status === 0, 10_000, 'munged');
  processes.push(spawn('slurmctld', ['-D', '-i', '-f', conf], { env: { ...process.env, ...env }, stdio: 'ignore' }));
  for (const n of names) processes.push(spawn('slurmd', ['-D', '-N', n, '-f', conf], { env: { ...process.env, ...env }, stdio: 'ignore' }));
  await waitFor(() => {
    const r = spawnSync('sinfo', ['-h', '-N', '-o', '%T'], { env: { ...process.env, ...env }, encoding: 'utf8' });
    return r.status === 0 && r.stdout.trim().split('\n').filter((l) => /idle/.test(l)).length === names.length;
  }, 30_000, `${names.length} Slurm node(s) to be idle (logs in ${dir})`);
  void hostname;
  return {
    dir,
    conf,
    env,
    async stop() {
      spawnSync('scancel', ['--user=root'], { env: { ...process.env, ...env } });
      for (const p of processes.reverse()) p.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 500));
      for (const p of processes) if (p.exitCode === null) p.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function waitFor(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out waiting for ${what}`);
}
