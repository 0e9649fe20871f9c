/**
 * Steps of the agent's start, each as milliseconds since node's process
 * began (`process.uptime()`: the `performance` global would load perf_hooks
 * and its internal modules at the first mark). The boot loader and the
 * bundle are separate scripts, so the record lives on the global object.
 * The agent prints it in its "agent serving" line (`startMs`), so that a
 * boot timeline shows where the agent's own start goes: node's bootstrap
 * before `loader`, compiling the bundle, evaluating its modules, then
 * main's own steps.
 */
const MARKS_KEY = '__kapselStartMarks';

function marks(): Record<string, number> {
  const g = globalThis as Record<string, unknown>;
  const existing = g[MARKS_KEY];
  if (typeof existing === 'object' && existing !== null) {
    return existing as Record<string, number>;
  }
  const fresh: Record<string, number> = {};
  g[MARKS_KEY] = fresh;
  return fresh;
}

/** Records that `step` ended now. */
export function markStart(step: string): void {
  marks()[step] = Math.round(process.uptime() * 1000);
}

/** Every step recorded so far, in the order they happened. */
export function startMarks(): Readonly<Record<string, number>> {
  return { ...marks() };
}
