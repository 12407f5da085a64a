import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** The agent's file name, here and on every host: one zipapp archive of agent/wattbench_agent/. */
export const AGENT_ARCHIVE = 'wattbench_agent.pyz';

/**
 * The agent archive to upload. Installed, it is dist/wattbench_agent.pyz beside the bundle. In a source
 * checkout (the bundle in dist/, or the sources run by tsx from src/cli, src/core/run, test/ or bench/) it
 * is <repo>/dist/wattbench_agent.pyz, built by scripts/build_agent.py (as `npm run build` does) when it is
 * missing or older than the agent's sources, so what runs is always the agent as it is now.
 */
export function findAgentSource(from: string = __dirname): string {
  const repo = [join(from, '..'), join(from, '..', '..'), join(from, '..', '..', '..')].find(isCheckout);
  if (repo) return freshArchive(repo);
  const beside = join(from, AGENT_ARCHIVE);
  if (existsSync(beside)) return beside;
  throw new Error(`cannot find ${AGENT_ARCHIVE} near ${from}`);
}

function isCheckout(dir: string): boolean {
  return existsSync(join(dir, 'scripts', 'build_agent.py')) && existsSync(join(dir, 'agent', 'wattbench_agent', '__main__.py'));
}

/** <repo>/dist/wattbench_agent.pyz, (re)built first if a source is newer. */
function freshArchive(repo: string): string {
  const archive = join(repo, 'dist', AGENT_ARCHIVE);
  const builder = join(repo, 'scripts', 'build_agent.py');
  const builtAt = existsSync(archive) ? statSync(archive).mtimeMs : -Infinity;
  if (builtAt < Math.max(statSync(builder).mtimeMs, newestMtime(join(repo, 'agent', 'wattbench_agent')))) {
    try {
      // Atomic and deterministic: test processes building at once leave the same, whole file.
      execFileSync('python3', [builder, archive], { stdio: ['ignore', 'ignore', 'pipe'] });
    } catch (error) {
      const stderr = (error as { stderr?: Buffer }).stderr?.toString().trim();
      throw new Error(`building ${archive} (python3 scripts/build_agent.py) failed: ${stderr || (error as Error).message}`);
    }
  }
  return archive;
}

/** The newest mtime of the .py files under `dir`, or of a directory (a file deleted or renamed). */
function newestMtime(dir: string): number {
  let newest = statSync(dir).mtimeMs;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, entry.name === '__pycache__' ? -Infinity : newestMtime(path));
    else if (entry.name.endsWith('.py')) newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}
