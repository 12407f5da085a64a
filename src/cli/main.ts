import { expandCommand, expandUsage } from './expand';
import { type CliIO, UsageError } from './io';
import { validateCommand, validateUsage } from './validate';
import { runCommand, runUsage } from './run';
import { reportCommand, reportUsage } from './report';
import { estimateCommand, estimateUsage } from './estimate';
import { calibrateCommand, calibrateUsage } from './calibrate';
import { importCommand, importUsage } from './import';
import { recommendCommand, recommendUsage } from './recommend';

type Command = (argv: string[], io: CliIO) => Promise<number>;

const commands: Record<string, { run: Command; usage: string }> = {
  validate: { run: validateCommand, usage: validateUsage },
  expand: { run: expandCommand, usage: expandUsage },
  estimate: { run: estimateCommand, usage: estimateUsage },
  calibrate: { run: calibrateCommand, usage: calibrateUsage },
  run: { run: runCommand, usage: runUsage },
  report: { run: reportCommand, usage: reportUsage },
  import: { run: importCommand, usage: importUsage },
  recommend: { run: recommendCommand, usage: recommendUsage },
};

function usage(): string {
  return ['usage: wattbench <command> [options]', '', ...Object.values(commands).map((c) => `  ${c.usage}`)].join('\n');
}

export async function main(argv: string[], io: CliIO): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    io.out(usage());
    return name ? 0 : 2;
  }
  if (name === '--version') {
    io.out(require('../../package.json').version);
    return 0;
  }
  const command = commands[name];
  if (!command) {
    io.err(`wattbench: unknown command "${name}"\n${usage()}`);
    return 2;
  }
  try {
    return await command.run(rest, io);
  } catch (error) {
    if (error instanceof UsageError) {
      io.err(`wattbench ${name}: ${error.message}\nusage: ${command.usage}`);
      return 2;
    }
    io.err(`wattbench ${name}: ${(error as Error).message}`);
    return 1;
  }
}
