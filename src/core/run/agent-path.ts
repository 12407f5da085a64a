import { existsSync } from 'node:fs';
import { join } from 'node:path';

/** The agent script beside the bundle (dist/ → ../agent) or the sources (src/cli → ../../agent). */
export function findAgentSource(from: string = __dirname): string {
  const candidates = [join(from, '..', 'agent', 'wattbench_agent.py'), join(from, '..', '..', 'agent', 'wattbench_agent.py'), join(from, '..', '..', '..', 'agent', 'wattbench_agent.py')];
  const found = candidates.find((c) => existsSync(c));
  if (!found) throw new Error(`cannot find agent/wattbench_agent.py near ${from}`);
  return found;
}
