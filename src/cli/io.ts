/** What a CLI command may touch, so commands run the same in a terminal and in tests. */
export interface CliIO {
  out(line: string): void;
  err(line: string): void;
  cwd: string;
  /** Standard output is a terminal: progress lines may be redrawn. */
  isTTY: boolean;
}

export const processIO: CliIO = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  cwd: process.cwd(),
  isTTY: Boolean(process.stdout.isTTY),
};

export class UsageError extends Error {}

/** Splits `--flag value`, `--flag=value` and bare `--switch` from positional arguments. */
export function parseArgs(argv: string[], switches: readonly string[] = []): { positional: string[]; flags: Map<string, string | true> } {
  const positional: string[] = [];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('-') || arg === '-') {
      positional.push(arg);
      continue;
    }
    const [name, inline] = arg.replace(/^--?/, '').split(/=(.*)/s, 2);
    if (inline !== undefined) flags.set(name, inline);
    else if (switches.includes(name) || i + 1 >= argv.length || argv[i + 1].startsWith('--')) flags.set(name, true);
    else flags.set(name, argv[++i]);
  }
  return { positional, flags };
}

export function stringFlag(flags: Map<string, string | true>, name: string): string | undefined {
  const value = flags.get(name);
  if (value === true) throw new UsageError(`--${name} needs a value`);
  return value;
}
