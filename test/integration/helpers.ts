import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { loadConfig } from '../../src/core/config';
import type { AgentEvent } from '../../src/core/protocol/events';
import { findAgentSource } from '../../src/core/run/agent-path';
import type { RunListener } from '../../src/core/run/follower';
import { Run } from '../../src/core/run/single';
import { RunStore } from '../../src/core/store/store';
import type { Transport } from '../../src/core/transport/types';
import type { Logger } from '../../src/core/util/logger';

/** The agent as it ships: dist/wattbench_agent.pyz, built from agent/wattbench_agent/ when missing or older. */
export const AGENT = findAgentSource();

/** A small, fast simulated config: two points of a few short requests each. */
export function simConfig(extra: { name?: string; sweep?: string; workload?: Record<string, string | number>; server?: string; telemetry?: string } = {}): string {
  const workload = { input_tokens: 64, output_tokens: 48, num_prompts: 6, warmup: 1, ...extra.workload };
  return `name: ${extra.name ?? 'itest'}
target: local
server:
${extra.server ?? '  sim: true'}
model:
  id: meta-llama/Llama-3.1-8B-Instruct
gpus:
  type: H100-SXM-80GB
  count: 2
workload:
${Object.entries(workload).map(([k, v]) => `  ${k}: ${typeof v === 'string' ? JSON.stringify(v) : v}`).join('\n')}
sweep:
${extra.sweep ?? '  concurrency: [1, 3]'}
telemetry:
${extra.telemetry ?? '  source: sim\n  interval: 50ms\n  idle_baseline: 1s'}
`;
}

export const testLogger = (lines: string[] = []): Logger => ({
  trace: () => undefined,
  debug: (m) => lines.push(`debug ${m}`),
  info: (m) => lines.push(`info ${m}`),
  warn: (m) => lines.push(`warn ${m}`),
  error: (m) => lines.push(`error ${m}`),
});

export function startRun(transport: Transport, configText: string, options: { target?: string; listener?: RunListener; store?: RunStore; reconnectForMs?: number; cancelGraceMs?: number; files?: Record<string, string> } = {}) {
  const workspace = mkdtempSync(join(tmpdir(), 'wb-ws-'));
  for (const [name, content] of Object.entries(options.files ?? {})) writeFileSync(join(workspace, name), content);
  const loaded = loadConfig(configText, { fileExists: (p) => Object.keys(options.files ?? {}).includes(p) });
  if (!loaded.config) throw new Error(`test config invalid: ${JSON.stringify(loaded.diagnostics)}`);
  const configPath = join(workspace, 'test.wattbench.yaml');
  writeFileSync(configPath, configText);
  const store = options.store ?? RunStore.forWorkspace(workspace);
  const log: string[] = [];
  const events: AgentEvent[] = [];
  const run = Run.start({
    store,
    transport,
    target: options.target ?? transport.label,
    agentSource: AGENT,
    configText,
    config: loaded.config,
    points: loaded.points,
    configFile: 'test.wattbench.yaml',
    resolveLocal: (p) => join(dirname(configPath), p),
    logger: testLogger(log),
    reconnectForMs: options.reconnectForMs ?? 60_000,
    maxBackoffMs: 1000,
    cancelGraceMs: options.cancelGraceMs,
    listener: {
      ...options.listener,
      onEvent: (e) => {
        events.push(e);
        options.listener?.onEvent?.(e);
      },
    },
  });
  return { run, store, workspace, log, events };
}

export function waitFor<T>(predicate: () => T | undefined | false, timeoutMs = 60_000, what = 'condition'): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const tick = () => {
      const value = predicate();
      if (value) return resolve(value);
      if (Date.now() > deadline) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 50);
    };
    tick();
  });
}
