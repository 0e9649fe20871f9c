import { pino, type Logger } from 'pino';

/**
 * The agent logs JSON lines to stderr, which PID 1 points at the guest
 * console. The level comes from the kernel command line (`kapsel.log=debug`)
 * by way of KAPSEL_LOG.
 */
export function createLogger(level = process.env['KAPSEL_LOG'] ?? 'info'): Logger {
  return pino({ name: 'kapsel-agent', level, base: { pid: process.pid } }, pino.destination(2));
}

export type { Logger };
