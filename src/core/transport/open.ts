import type { Logger } from '../util/logger';
import { LocalTransport } from './local';
import { SshTransport, type SshOptions } from './ssh';
import type { Transport } from './types';

/** The transport for a target host as a config or a user writes it: "local", an alias, user@host:port. */
export function openTransport(host: string, options: SshOptions & { logger?: Logger; localEnv?: NodeJS.ProcessEnv } = {}): Transport {
  if (host === 'local' || host === 'localhost-local') return new LocalTransport(options.localEnv);
  return SshTransport.forHost(host, options);
}
