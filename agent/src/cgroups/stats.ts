import type { StatsContainerResponse } from '../../../proto/generated/agent.js';
import { cpuStats } from './cpu.js';
import { ioStats } from './io.js';
import { memoryStats } from './memory.js';
import { pidsStats } from './pids.js';

/**
 * What StatsContainer answers, each part read by its controller's file; a
 * controller that is not enabled leaves its part unset.
 */
export async function readStats(dir: string): Promise<StatsContainerResponse> {
  const [cpu, memory, pids, blkio] = await Promise.all([
    cpuStats(dir),
    memoryStats(dir),
    pidsStats(dir),
    ioStats(dir),
  ]);
  return { cpu, memory, pids, blkio };
}
