import { createWriteStream, type WriteStream } from 'node:fs';
import type { Readable } from 'node:stream';

export interface ConsoleLine {
  /** Nanoseconds since the console was opened (QEMU's spawn). */
  ns: bigint;
  text: string;
}

interface Waiter {
  re: RegExp;
  resolve: (line: ConsoleLine) => void;
  reject: (err: Error) => void;
}

/**
 * SeaBIOS clears the screen with escape sequences (`ESC c`, `ESC [2J`) and
 * the kernel ends lines with CR LF; neither belongs in a log or a regexp match.
 */
// eslint-disable-next-line no-control-regex
const ESCAPES = /\x1b(?:\[[0-?]*[ -/]*[@-~]|[ -/]*[0-~])|[\x00-\x08\x0b-\x1f\x7f]/g;

export function cleanConsoleText(s: string): string {
  return s.replace(ESCAPES, '');
}

function matches(re: RegExp, text: string): boolean {
  re.lastIndex = 0; // a /g or /y regexp keeps state between test() calls
  return re.test(text);
}

function fmtSeconds(ns: bigint): string {
  const us = ns / 1000n;
  return `${us / 1_000_000n}.${(us % 1_000_000n).toString().padStart(6, '0')}`;
}

/**
 * The guest's serial console: splits QEMU's output into lines, appends each to
 * the log file as `[seconds-since-spawn] text`, keeps the last lines for error
 * messages and lets callers wait for a line.
 */
export class GuestConsole {
  readonly #start: bigint;
  readonly #out: WriteStream;
  readonly #tail: ConsoleLine[] = [];
  readonly #tailSize: number;
  #partial = '';
  #waiters = new Set<Waiter>();
  #ended = false;
  #firstLine: ((line: ConsoleLine) => void) | undefined;
  readonly #onLine: ((line: ConsoleLine) => void) | undefined;
  readonly #done: Promise<void>;

  constructor(
    input: Readable,
    logPath: string,
    opts: {
      start?: bigint;
      tailLines?: number;
      onFirstLine?: (line: ConsoleLine) => void;
      /** Called for every line, before anyone waiting for it is told. */
      onLine?: (line: ConsoleLine) => void;
    } = {},
  ) {
    this.#start = opts.start ?? process.hrtime.bigint();
    this.#tailSize = opts.tailLines ?? 40;
    this.#firstLine = opts.onFirstLine;
    this.#onLine = opts.onLine;
    this.#out = createWriteStream(logPath, { flags: 'a' });
    this.#out.on('error', () => undefined); // a full disk must not take the VM down
    input.setEncoding('utf8');
    input.on('data', (chunk: string) => {
      this.#feed(chunk);
    });
    this.#done = new Promise<void>((resolve) => {
      const finish = (): void => {
        if (this.#ended) return;
        this.#ended = true;
        if (this.#partial !== '') this.#line(this.#partial);
        this.#partial = '';
        for (const w of this.#waiters) w.reject(new Error('guest console closed'));
        this.#waiters.clear();
        this.#out.end(() => {
          resolve();
        });
      };
      input.once('end', finish);
      input.once('close', finish);
      input.once('error', finish);
    });
  }

  /** Resolves once the input ended and the log file is flushed. */
  get done(): Promise<void> {
    return this.#done;
  }

  /** The last lines the guest printed, oldest first. */
  tail(n = this.#tailSize): string[] {
    return this.#tail.slice(-n).map((l) => l.text);
  }

  /**
   * Resolves with the first line that matches `re`: among the kept last lines
   * when `includeTail` is set (for a line that may already have been
   * printed), else from now on.
   */
  waitFor(
    re: RegExp,
    opts: { signal?: AbortSignal; includeTail?: boolean } = {},
  ): Promise<ConsoleLine> {
    const { signal } = opts;
    return new Promise((resolve, reject) => {
      if (opts.includeTail) {
        const seen = this.#tail.find((l) => matches(re, l.text));
        if (seen) {
          resolve(seen);
          return;
        }
      }
      if (this.#ended) {
        reject(new Error('guest console closed'));
        return;
      }
      const onAbort = (): void => {
        this.#waiters.delete(w);
        reject(signal?.reason as Error);
      };
      const w: Waiter = {
        re,
        resolve: (l) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(l);
        },
        reject: (e) => {
          signal?.removeEventListener('abort', onAbort);
          reject(e);
        },
      };
      if (signal?.aborted) {
        onAbort();
        return;
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#waiters.add(w);
    });
  }

  #feed(chunk: string): void {
    this.#partial += chunk;
    let nl: number;
    while ((nl = this.#partial.indexOf('\n')) >= 0) {
      const raw = this.#partial.slice(0, nl);
      this.#partial = this.#partial.slice(nl + 1);
      // SeaBIOS resets the terminal (ESC c) where the kernel's output begins,
      // without a newline before it: treat the reset as a line break.
      for (const part of raw.split('\x1bc')) this.#line(part);
    }
  }

  #line(raw: string): void {
    const text = cleanConsoleText(raw);
    if (text.trim() === '') return;
    const line: ConsoleLine = { ns: process.hrtime.bigint() - this.#start, text };
    if (this.#firstLine) {
      this.#firstLine(line);
      this.#firstLine = undefined;
    }
    this.#onLine?.(line);
    this.#out.write(`[${fmtSeconds(line.ns)}] ${text}\n`);
    this.#tail.push(line);
    if (this.#tail.length > this.#tailSize) this.#tail.shift();
    for (const w of this.#waiters) {
      if (matches(w.re, text)) {
        this.#waiters.delete(w);
        w.resolve(line);
      }
    }
  }
}
