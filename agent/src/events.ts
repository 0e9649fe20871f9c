import type { OomEvent } from './cgroups/events.js';

export type AgentEvent = OomEvent;

/** Events kept while nobody listens, oldest dropped first. */
const BACKLOG = 100;

/**
 * Fan-out of guest events to GetEvents streams. Events that happen while no
 * stream is open are kept (up to BACKLOG) for the next one, as the Kata
 * agent queues OOM events for the host to collect.
 */
export class EventHub {
  private readonly listeners = new Set<(e: AgentEvent) => void>();
  private backlog: AgentEvent[] = [];

  publish(event: AgentEvent): void {
    if (this.listeners.size === 0) {
      this.backlog.push(event);
      if (this.backlog.length > BACKLOG) this.backlog.shift();
      return;
    }
    for (const l of this.listeners) l(event);
  }

  /** Delivers the backlog first; returns the unsubscribe function. */
  subscribe(listener: (e: AgentEvent) => void): () => void {
    const pending = this.backlog;
    this.backlog = [];
    for (const e of pending) listener(e);
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }
}
