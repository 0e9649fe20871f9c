/**
 * Named moments of one VM's life on the monotonic clock, for logs and the boot
 * benchmark. Vm.boot() starts the clock when it is called and marks
 * virtiofsdReady (with a share), spawned, qmpReady, resumed (the paused guest
 * was let run), firstConsoleLine, the guest's phases it reads off the console
 * (GUEST_PHASES), agentPortOpen and exited; the sandbox adds agentAnswered,
 * containerCreated and containerStarted.
 */
export class Timeline {
  readonly start: bigint;
  /** Wall clock at `start`, ms since the epoch: lets another process add its own marks. */
  readonly startedAt: number;
  readonly #marks = new Map<string, bigint>();
  readonly #notes = new Map<string, number>();

  constructor(start = process.hrtime.bigint()) {
    this.start = start;
    this.startedAt = Date.now() - Number(process.hrtime.bigint() - start) / 1e6;
  }

  /** Records `name` now (or at `at`); the first record of a name wins. */
  mark(name: string, at: bigint = process.hrtime.bigint()): void {
    if (!this.#marks.has(name)) this.#marks.set(name, at);
  }

  /**
   * A figure measured on another clock, e.g. the guest's CLOCK_BOOTTIME when
   * its init started (ms); kept apart from the marks, which share one clock.
   */
  note(name: string, value: number): void {
    if (!this.#notes.has(name)) this.#notes.set(name, value);
  }

  has(name: string): boolean {
    return this.#marks.has(name);
  }

  /** Milliseconds from the start to `name`, or undefined if it did not happen. */
  ms(name: string): number | undefined {
    const t = this.#marks.get(name);
    return t === undefined ? undefined : Number(t - this.start) / 1e6;
  }

  /** All marks in milliseconds since the start, in the order they happened. */
  toJSON(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [name, t] of [...this.#marks].sort((a, b) => (a[1] < b[1] ? -1 : 1))) {
      out[name] = Math.round((Number(t - this.start) / 1e6) * 10) / 10;
    }
    return out;
  }

  /** What `kapsel --debug` logs and <vm dir>/timeline.json holds. */
  report(): TimelineReport {
    return {
      startedAt: Math.round(this.startedAt),
      ms: this.toJSON(),
      guest: Object.fromEntries(this.#notes),
    };
  }
}

/** A timeline as written to <vm dir>/timeline.json. */
export interface TimelineReport {
  /** Wall clock of the start (Vm.boot called), ms since the epoch. */
  startedAt: number;
  /** Host-side marks, ms since the start. */
  ms: Record<string, number>;
  /** Figures on the guest's clock (ms since the guest kernel started). */
  guest: Record<string, number>;
}

/**
 * Console lines that mark a phase of the guest's start: the native init's
 * (native/init/init.c) and the agent's first log line. A `s` group carries
 * the guest's own uptime in seconds, noted as `<mark>@guest` in ms.
 */
export const GUEST_PHASES: readonly { mark: string; re: RegExp }[] = [
  // The kernel runs with `quiet`: PID 1's first line is the end of its boot.
  { mark: 'initStarted', re: /^kapsel-init: started/ },
  { mark: 'initStarted', re: /^kapsel-init: kernel booted in (?<s>[\d.]+) s/ },
  {
    mark: 'modulesLoaded',
    re: /^kapsel-init: loaded \d+ kernel modules(?: in [\d.]+ s)?(?: \((?<s>[\d.]+) s after boot\))?/,
  },
  {
    mark: 'imageMounted',
    re: /^kapsel-init: mounted the guest image .*\((?<s>[\d.]+) s after boot\)/,
  },
  { mark: 'agentExec', re: /^kapsel-init: started agent .*, (?<s>[\d.]+) s after boot\)/ },
  { mark: 'agentServing', re: /"msg":"agent serving on virtio-serial port"/ },
];

/** Marks (and notes) the phase a console line announces, if any. */
export function markGuestPhase(timeline: Timeline, text: string, at: bigint): void {
  for (const { mark, re } of GUEST_PHASES) {
    const m = re.exec(text);
    if (m === null) continue;
    timeline.mark(mark, at);
    const s = m.groups?.['s'];
    if (s !== undefined) timeline.note(`${mark}@guest`, Math.round(Number(s) * 1000));
  }
}
