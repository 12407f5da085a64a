import { processIO } from './cli/io';
import { main } from './cli/main';

main(process.argv.slice(2), processIO).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`wattbench: ${(error as Error).stack ?? error}\n`);
    process.exitCode = 1;
  },
);
