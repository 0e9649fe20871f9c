import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { TimelineReport } from './vm/timeline.js';
import { vmDirLayout } from './vm-dir.js';

/**
 * `kapsel --debug`: logs the sandbox's boot timeline (what its monitor wrote
 * to <vm dir>/timeline.json, vm/timeline.ts) with `mark` added at the
 * caller's now if the monitor has not recorded it yet. Phases in ms since
 * the VM's boot began; `guest` holds the guest's own uptimes. Quiet unless
 * the level is debug, and when the file is missing (a pod's later container
 * reads its first container's timeline).
 */
export async function logBootTimeline(vmDir: string, mark: string, log: Logger): Promise<void> {
  if (!log.isLevelEnabled('debug')) return;
  let report: TimelineReport;
  try {
    report = JSON.parse(await readFile(vmDirLayout(vmDir).timeline, 'utf8')) as TimelineReport;
  } catch (err) {
    log.debug({ err }, 'no boot timeline to log');
    return;
  }
  report.ms[mark] ??= Math.round(Date.now() - report.startedAt);
  const phases = Object.entries(report.ms)
    .sort((a, b) => a[1] - b[1])
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  log.debug({ phases: report.ms, guest: report.guest }, `boot timeline (ms): ${phases}`);
}
