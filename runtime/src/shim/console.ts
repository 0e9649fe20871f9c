import { readlinkSync } from 'node:fs';
import { ReadStream, WriteStream } from 'node:tty';
import { constants } from 'node:os';
import type { Logger } from 'pino';
import { RuntimeError } from '../sys/errors.js';
import { loadHostNative } from '../sys/host-native.js';
import { Relay, type ProcessRef } from './relay.js';

/**
 * runc's --console-socket protocol on the host: a fresh pty whose master goes
 * to the caller over the socket (SCM_RIGHTS); the shim keeps the slave and
 * relays it to and from the guest process's own terminal. The slave becomes
 * the shim's controlling terminal, so the caller's resizes of the master
 * arrive here as SIGWINCH and go on as TtyWinResize.
 */
export function attachConsole(p: ProcessRef, consoleSocket: string, log: Logger): Relay {
  const native = loadHostNative();
  const fds = new Int32Array(2);
  check(native.openpty(fds), 'open a pty');
  const [master, slave] = [fds[0] ?? -1, fds[1] ?? -1];
  const name = readlinkSync(`/proc/self/fd/${slave}`);
  try {
    check(native.sendFd(consoleSocket, master, name), `send the pty master to ${consoleSocket}`);
  } finally {
    native.close(master);
  }
  // We are a session leader (started detached); failing this only loses resizes.
  if (native.setCtty(slave) !== 0) log.warn('cannot make the pty our controlling terminal');
  const relay = new Relay(p, { stdout: new WriteStream(slave) }, log);
  relay.takeInput(new ReadStream(slave));
  const resize = (): void => {
    const ws = new Uint32Array(2);
    if (native.getWinsize(slave, ws) !== 0 || ws[0] === 0) return;
    relay.resize(ws[0] ?? 0, ws[1] ?? 0);
  };
  process.on('SIGWINCH', resize);
  relay.onClose(() => process.off('SIGWINCH', resize));
  resize();
  return relay;
}

function check(r: number, step: string): void {
  if (r < 0) {
    const name = Object.entries(constants.errno).find(([, n]) => n === -r)?.[0] ?? String(-r);
    throw new RuntimeError(`${step}: ${name}`);
  }
}
