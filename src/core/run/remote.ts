/**
 * The agent on a host, through any transport: install by content hash into a private cache, start a
 * run detached, tail its events, cancel it, find runs still going. Every path and value that reaches
 * a shell is quoted.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { shq } from '../transport/shell';
import type { ExecResult, StreamingExec, Transport } from '../transport/types';
import { TransportError } from '../transport/types';
import { AGENT_ARCHIVE } from './agent-path';

/** Where the agent keeps its files on a host; WATTBENCH_HOME overrides (tests, shared clusters). */
const HOME_EXPR = '"${WATTBENCH_HOME:-$HOME/.cache/wattbench}"';

export class AgentError extends Error {
  constructor(
    message: string,
    readonly kind: 'no-python' | 'old-python' | 'install' | 'start' | 'cancel' | 'remote',
  ) {
    super(message);
    this.name = 'AgentError';
  }
}

export interface InstalledAgent {
  transport: Transport;
  /** Absolute path of the agent on the host (its wattbench_agent.pyz; `python3 PATH COMMAND` runs it). */
  path: string;
  /** The agent's home on the host ($WATTBENCH_HOME). */
  home: string;
  python: string;
  /** Why the archive already cached on the host was not used and was uploaded again. */
  replaced?: string;
}

function check(result: ExecResult, what: string, where: string): string {
  if (result.code !== 0)
    throw new AgentError(`${what} on ${where} failed (exit ${result.code ?? result.signal}): ${(result.stderr || result.stdout).trim().split('\n').slice(-5).join(' | ')}`, 'remote');
  return result.stdout;
}

/** Checks Python, then uploads the agent archive (wattbench_agent.pyz) unless this exact one is already there. */
export async function installAgent(transport: Transport, agentSource: string): Promise<InstalledAgent> {
  const code = readFileSync(agentSource);
  const digest = createHash('sha256').update(code).digest('hex');
  const hash = digest.slice(0, 16);
  // What is in the cache is only run if it is this very archive, ours, and nobody else could have changed it.
  const probe = await transport.exec(
    `H=${HOME_EXPR}; if ! V=$(python3 -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null); then echo NO_PYTHON; exit 0; fi; ` +
      `echo "PY $V"; echo "HOME $H"; echo "UID $(id -u)"; F="$H/agent/${hash}/${AGENT_ARCHIVE}"; ` +
      `if test -f "$F"; then echo "SUM $(sha256sum "$F" 2>/dev/null | cut -d' ' -f1)"; ` +
      `for P in "$F" "$H/agent/${hash}" "$H/agent" "$H"; do echo "STAT $(stat -c '%u %a' "$P" 2>/dev/null) $P"; done; fi`,
  );
  const out = check(probe, 'checking for python3', transport.label);
  if (out.includes('NO_PYTHON'))
    throw new AgentError(`python3 was not found on ${transport.label}. Wattbench's agent needs Python 3.8 or newer (standard library only): install it (e.g. apt-get install python3) or put it on the PATH of non-interactive shells.`, 'no-python');
  const version = /^PY (\d+)\.(\d+)\.(\d+)$/m.exec(out);
  if (!version) throw new AgentError(`could not read python3's version on ${transport.label}: ${out.trim()}`, 'no-python');
  if (Number(version[1]) < 3 || (Number(version[1]) === 3 && Number(version[2]) < 8))
    throw new AgentError(`python3 on ${transport.label} is ${version[1]}.${version[2]}; Wattbench's agent needs 3.8 or newer.`, 'old-python');
  const home = /^HOME (.+)$/m.exec(out)![1];
  const dir = `${home}/agent/${hash}`;
  const cached = cachedAgentProblem(out, digest);
  if (cached?.fatal) throw new AgentError(`refusing to run the agent cached on ${transport.label}: ${cached.why}`, 'install');
  if (cached) {
    const upload = await transport.exec(
      `umask 077 && mkdir -p ${shq(dir)} && chmod 700 ${shq(home)} ${shq(`${home}/agent`)} ${shq(dir)} && cat > ${shq(`${dir}/${AGENT_ARCHIVE}.part`)} && mv ${shq(`${dir}/${AGENT_ARCHIVE}.part`)} ${shq(`${dir}/${AGENT_ARCHIVE}`)}`,
      { stdin: code },
    );
    if (upload.code !== 0) throw new AgentError(`uploading the agent to ${transport.label}:${dir} failed: ${upload.stderr.trim()}`, 'install');
  }
  return { transport, path: `${dir}/${AGENT_ARCHIVE}`, home, python: `${version[1]}.${version[2]}.${version[3]}`, ...(cached?.why && { replaced: cached.why }) };
}

/**
 * Whether the cached archive the probe described can be run: absent or altered → upload it again
 * (`fatal` false); owned by someone else → refuse (`fatal`), since we could neither trust nor replace it.
 */
export function cachedAgentProblem(probe: string, digest: string): { why: string; fatal: boolean } | undefined {
  const sum = /^SUM (\S*)$/m.exec(probe)?.[1];
  if (sum === undefined) return { why: '', fatal: false };
  const uid = /^UID (\d+)$/m.exec(probe)?.[1];
  for (const [, owner, mode, path] of probe.matchAll(/^STAT (\d+) ([0-7]+) (.+)$/gm)) {
    if (uid !== undefined && owner !== uid) return { why: `${path} belongs to uid ${owner}, not to you (uid ${uid})`, fatal: true };
    if (parseInt(mode, 8) & 0o022) return { why: `${path} is writable by others (mode ${mode})`, fatal: false };
  }
  if (sum !== digest) return { why: `its content does not match (sha256 ${sum.slice(0, 16) || 'unreadable'}…, expected ${digest.slice(0, 16)}…)`, fatal: false };
  return undefined;
}

export function remoteRunDir(agent: InstalledAgent, runId: string): string {
  return `${agent.home}/runs/${runId}`;
}

/**
 * Writes files into a fresh private run directory on the host: the job file and the run directory in
 * the same command that receives the job (one round trip), any dataset files after it.
 */
export async function uploadRunFiles(agent: InstalledAgent, runDir: string, files: Map<string, Buffer | string>): Promise<void> {
  const t = agent.transport;
  for (const name of files.keys()) if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new AgentError(`refusing to upload a file named ${JSON.stringify(name)}`, 'install');
  const [first, ...rest] = [...files];
  const make = `umask 077 && mkdir -p ${shq(runDir)} && chmod 700 ${shq(runDir)}`;
  if (!first) return void check(await t.exec(make), 'creating the run directory', t.label);
  check(await t.exec(`${make} && cat > ${shq(`${runDir}/${first[0]}`)}`, { stdin: first[1] }), `uploading ${first[0]}`, t.label);
  for (const [name, content] of rest) check(await t.exec(`umask 077 && cat > ${shq(`${runDir}/${name}`)}`, { stdin: content }), `uploading ${name}`, t.label);
}

/** Starts the agent detached (it outlives this connection); returns its pid. */
export async function startAgent(agent: InstalledAgent, runDir: string): Promise<number> {
  const result = await agent.transport.exec(`cd ${shq(runDir)} && python3 ${shq(agent.path)} run --job job.json --run-dir ${shq(runDir)} --detach`);
  const line = result.stdout.trim().split('\n').pop() ?? '';
  try {
    const parsed = JSON.parse(line) as { pid?: number; type?: string; message?: string };
    if (typeof parsed.pid === 'number' && result.code === 0) return parsed.pid;
    if (parsed.type === 'error') throw new AgentError(`the agent on ${agent.transport.label} could not start: ${parsed.message}`, 'start');
  } catch (error) {
    if (error instanceof AgentError) throw error;
  }
  throw new AgentError(`the agent on ${agent.transport.label} did not start (exit ${result.code}): ${(result.stderr || result.stdout).trim().slice(-500)}`, 'start');
}

/**
 * Follows the event file from `offset` until the agent (pid) exits. GNU tail's `--pid` ends the
 * stream when the agent ends, so no tail is left behind on the host.
 */
export function tailEvents(transport: Transport, runDir: string, pid: number, offset: number, onData: (chunk: Buffer) => void): StreamingExec {
  const file = shq(`${runDir}/events.ndjson`);
  return transport.stream(`tail --pid=${Math.trunc(pid)} -s 0.2 -c +${Math.trunc(offset) + 1} -F ${file} 2>/dev/null; true`, onData);
}

/** Whatever the event file holds past `offset` (the final catch-up after the agent ended). */
export async function readEventsFrom(transport: Transport, runDir: string, offset: number): Promise<Buffer> {
  const result = await transport.exec(`tail -c +${Math.trunc(offset) + 1} ${shq(`${runDir}/events.ndjson`)} 2>/dev/null | base64`);
  return Buffer.from(result.stdout.replace(/\s+/g, ''), 'base64');
}

export async function isAlive(transport: Transport, pid: number): Promise<boolean> {
  const result = await transport.exec(`kill -0 ${Math.trunc(pid)} 2>/dev/null && grep -q wattbench /proc/${Math.trunc(pid)}/cmdline 2>/dev/null && echo ALIVE || true`);
  return result.stdout.includes('ALIVE');
}

/** Asks the agent to stop (it stops the server, restores power limits and writes `done`). */
export async function signalAgent(transport: Transport, pid: number, signal: 'TERM' | 'KILL' = 'TERM'): Promise<void> {
  await transport.exec(`kill -${signal} ${Math.trunc(pid)} 2>/dev/null || true`);
}

/** Restores power limits an agent that died hard left changed (a no-op when there are none). */
export async function restoreCaps(agent: InstalledAgent): Promise<string> {
  const result = await agent.transport.exec(`python3 ${shq(agent.path)} restore-caps`);
  const line = result.stdout.trim().split('\n').pop() ?? '';
  try {
    const said = JSON.parse(line) as { status?: string; message?: string; errors?: { i: number; message: string }[] };
    const errors = said.errors?.length ? ` (${said.errors.map((e) => `GPU ${e.i}: ${e.message}`).join('; ')})` : '';
    return `${said.status ?? 'unknown'}${said.message ? `: ${said.message}` : ''}${errors}`;
  } catch {
    return (result.stdout || result.stderr).trim() || `restore-caps exited ${result.code}`;
  }
}

/**
 * After an agent died hard, the inference server it started lives on in its own process group: the
 * agent's `stop-server` stops it (TERM, then KILL), but only once state.json's fingerprint shows the group
 * is still that server and its agent is gone, so a reused pgid is never killed.
 */
export async function stopLeftoverServer(agent: InstalledAgent, runDir: string): Promise<string> {
  const result = await agent.transport.exec(`python3 ${shq(agent.path)} stop-server --run-dir ${shq(runDir)}`);
  const line = result.stdout.trim().split('\n').pop() ?? '';
  try {
    const said = JSON.parse(line) as { status?: string; message?: string; pgid?: number | null; signal?: string | null };
    if (said.status === 'stopped') return `stopped the server (process group ${said.pgid}${said.signal ? `, ${said.signal}` : ''})`;
    if (said.status === 'nothing') return 'no server left running';
    return `server: ${said.status}: ${said.message ?? ''}`.trim();
  } catch {
    return `could not stop the server: ${(result.stderr || result.stdout).trim().slice(-300) || `exit ${result.code}`}`;
  }
}

export async function fetchText(transport: Transport, path: string, maxBytes = 1 << 20): Promise<string | undefined> {
  const result = await transport.exec(`test -f ${shq(path)} && tail -c ${Math.trunc(maxBytes)} ${shq(path)}`);
  return result.code === 0 ? result.stdout : undefined;
}

export function isDisconnect(error: unknown): boolean {
  return error instanceof TransportError && (error.kind === 'disconnected' || error.kind === 'unreachable' || error.kind === 'timeout');
}
