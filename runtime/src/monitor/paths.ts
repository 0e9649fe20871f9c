import { join } from 'node:path';

export interface MonitorPaths {
  dir: string;
  /** The monitor's gRPC socket: the agent API, forwarded. */
  socket: string;
  pidFile: string;
  log: string;
  /** The directory virtiofsd shares into the guest. */
  shared: string;
}

/** Files of a sandbox monitor, under --root/.vm/<sandbox id>/. */
export function monitorPaths(vmDir: string): MonitorPaths {
  return {
    dir: vmDir,
    socket: join(vmDir, 'monitor.sock'),
    pidFile: join(vmDir, 'monitor.pid'),
    log: join(vmDir, 'monitor.log'),
    shared: join(vmDir, 'shared'),
  };
}
