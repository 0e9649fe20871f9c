import { spawn } from 'node:child_process';
import type { Logger } from 'pino';
import { Any } from '../../../proto/generated/google/protobuf/any.js';

/** An event message as ts-proto types it: encode() and its type URL. */
export interface EventType<T> {
  encode(message: T): { finish(): Uint8Array };
  fromPartial(object: never): T;
}

/**
 * Publishes task events to containerd the way the shim API documents it:
 * through `-publish-binary` (containerd itself), as
 * `containerd --address ADDR publish --topic TOPIC --namespace NS` with the
 * event, a protobuf Any, on stdin (cmd/containerd/command/publish.go). Events
 * go out one at a time, in order: containerd must see a task's exit before
 * its delete.
 */
export class EventPublisher {
  #chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly binary: string,
    private readonly address: string,
    private readonly namespace: string,
    private readonly log: Logger,
  ) {}

  /**
   * Queues `event` under `topic` (`/tasks/exit`); `typeName` is its proto
   * full name (`containerd.events.TaskExit`), the type URL containerd's
   * typeurl registered it under.
   */
  publish<T>(topic: string, typeName: string, type: EventType<T>, event: T): void {
    const any = Any.encode({
      typeUrl: typeName,
      value: Buffer.from(type.encode(event).finish()),
    }).finish();
    this.#chain = this.#chain.then(() => this.#run(topic, Buffer.from(any)));
  }

  /** Settles once everything queued so far went out (or failed, logged). */
  flushed(): Promise<void> {
    return this.#chain;
  }

  #run(topic: string, payload: Buffer): Promise<void> {
    if (this.address === '') return Promise.resolve();
    return new Promise((resolve) => {
      const child = spawn(
        this.binary,
        ['--address', this.address, 'publish', '--topic', topic, '--namespace', this.namespace],
        { stdio: ['pipe', 'ignore', 'pipe'] },
      );
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('error', (err) => {
        this.log.warn({ err, topic }, 'publishing an event failed');
        resolve();
      });
      child.on('close', (code) => {
        if (code !== 0) this.log.warn({ topic, code, stderr: stderr.trim() }, 'publish failed');
        resolve();
      });
      child.stdin.on('error', () => undefined);
      child.stdin.end(payload);
    });
  }
}
