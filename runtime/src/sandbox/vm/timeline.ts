/**
 * Named moments of one VM's life on the monotonic clock, for logs and the boot
 * benchmark. Vm.boot() starts the clock when it is called and marks
 * virtiofsdReady (with a share), spawned, qmpReady, resumed (the paused guest
 * was let run), firstConsoleLine, agentPortOpen and exited.
 */
export class Timeline {
  readonly start: bigint;
  readonly #marks = new Map<string, bigint>();

  constructor(start = process.hrtime.bigint()) {
    this.start = start;
  }

  /** Records `name` now (or at `at`); the first record of a name wins. */
  mark(name: string, at: bigint = process.hrtime.bigint()): void {
    if (!this.#marks.has(name)) this.#marks.set(name, at);
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
}
