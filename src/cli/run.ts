import { dirname, relative, resolve } from 'node:path';
import { readFileSync } from 'node:fs';
import { formatDiagnostic, hasErrors } from '../core/config';
import { loadConfigFile } from '../core/workspace/configs';
import { findAgentSource } from '../core/run/agent-path';
import { describeTarget, startRun } from '../core/run/start';
import { RunStore } from '../core/store/store';
import { openTransport } from '../core/transport/open';
import type { Logger } from '../core/util/logger';
import { summaryTable } from './format';
import { type CliIO, parseArgs, stringFlag, UsageError } from './io';

export const runUsage = 'wattbench run FILE [--host H] [--workspace DIR] [--json] [--verbose]   run a config and store the result';

function cliLogger(io: CliIO, verbose: boolean): Logger {
  const say = (level: string) => (message: string | Error) => io.err(`[${level}] ${message instanceof Error ? message.message : message}`);
  return { trace: () => undefined, debug: verbose ? say('debug') : () => undefined, info: verbose ? say('info') : () => undefined, warn: say('warn'), error: say('error') };
}

export async function runCommand(argv: string[], io: CliIO): Promise<number> {
  const { positional, flags } = parseArgs(argv, ['json', 'verbose']);
  if (positional.length !== 1) throw new UsageError('run needs exactly one config file');
  const file = resolve(io.cwd, positional[0]);
  const workspace = resolve(io.cwd, stringFlag(flags, 'workspace') ?? '.');
  const loaded = loadConfigFile(file);
  if (hasErrors(loaded.diagnostics) || !loaded.config) {
    for (const d of loaded.diagnostics) io.err(formatDiagnostic(positional[0], d));
    return 1;
  }
  const config = loaded.config;
  const host = stringFlag(flags, 'host');
  const target = describeTarget(config, host);
  const log = cliLogger(io, flags.has('verbose'));
  const started = Date.now();
  let samples = 0;
  let lastWatts = 0;
  let currentPoint = '';
  let pointsDone = 0;
  const progress = (text: string) => {
    if (flags.has('json')) return;
    if (io.isTTY) process.stdout.write(`\r\x1b[2K${text}`);
  };
  const run = startRun({
    store: RunStore.forWorkspace(workspace),
    host,
    transportFor: (h) => openTransport(h, { logger: log }),
    agentSource: findAgentSource(),
    configText: readFileSync(file, 'utf8'),
    config,
    points: loaded.points,
    configFile: relative(workspace, file),
    resolveLocal: (p) => resolve(dirname(file), p),
    logger: log,
    listener: {
      onPhase: (phase, detail) => {
        if (!flags.has('json') && !io.isTTY) io.err(`${phase}${detail ? `: ${detail}` : ''}`);
      },
      onProblem: (message) => io.err(`warning: ${message}`),
      onEvent: (event) => {
        if (event.type === 'sample') {
          samples++;
          lastWatts = event.gpus.reduce((s, g) => s + g.p_w, 0);
        } else if (event.type === 'point' && event.state === 'start') currentPoint = event.point;
        else if (event.type === 'point' && event.state === 'end') {
          pointsDone++;
          if (!io.isTTY && !flags.has('json')) io.err(`point ${pointsDone}/${loaded.points.length} ${event.point}: ${event.status}`);
        } else if (event.type === 'error') io.err(`${event.fatal ? 'error' : 'warning'} (${event.where}): ${event.message}${event.detail ? `\n${event.detail}` : ''}`);
        progress(`${run.id} · point ${Math.min(pointsDone + 1, loaded.points.length)}/${loaded.points.length} ${currentPoint} · ${Math.round(lastWatts)} W · ${samples} samples · ${Math.round((Date.now() - started) / 1000)} s`);
      },
    },
  });
  let cancelling = false;
  const onSignal = () => {
    if (cancelling) return;
    cancelling = true;
    io.err('\ncancelling: stopping the workload and restoring power limits on the host...');
    void run.cancel();
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const outcome = await run.done;
    if (io.isTTY) process.stdout.write('\r\x1b[2K');
    if (flags.has('json')) io.out(JSON.stringify({ run_id: run.id, dir: run.writer.dir, status: outcome.status, summary: outcome.summary }, null, 2));
    else {
      io.out(`run ${run.id}: ${outcome.status} (stored in ${relative(io.cwd, run.writer.dir) || '.'})`);
      io.out(summaryTable(outcome.summary));
      if (outcome.status === 'detached') io.out(`the run goes on at ${target}; Wattbench reattaches when the extension starts again`);
    }
    return outcome.status === 'ok' ? 0 : outcome.status === 'cancelled' ? 130 : 1;
  } catch (error) {
    io.err(`run ${run.id} failed: ${(error as Error).message}`);
    return 1;
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}
