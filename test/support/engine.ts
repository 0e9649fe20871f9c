// Shared by the engine tests at host and VM level: runs a spec through an
// agent (standalone or in a guest) and collects what the container printed.
import type { ServiceError } from '@grpc/grpc-js';
import type { Spec } from '../../oci/spec.js';
import type { AgentClient } from '../../runtime/src/sandbox/agent-client.js';

export interface RunResult {
  exit: { exitCode: number; signal: number };
  stdout: string;
  stderr: string;
}

export async function collect(stream: AsyncIterable<Buffer>): Promise<string> {
  let out = '';
  for await (const chunk of stream) out += chunk.toString();
  return out;
}

/** Create, read both outputs, start, wait, remove. */
export async function runSpec(client: AgentClient, id: string, spec: Spec): Promise<RunResult> {
  await client.createContainer({ containerId: id, ociSpecJson: JSON.stringify(spec) });
  try {
    const stdout = collect(client.readOutput('stdout', id));
    const stderr = collect(client.readOutput('stderr', id));
    await client.startContainer(id);
    const exit = await client.waitProcess(id);
    return { exit, stdout: await stdout, stderr: await stderr };
  } finally {
    await client.removeContainer(id);
  }
}

/** The error a call failed with, or undefined when it succeeded. */
export function failureOf(p: Promise<unknown>): Promise<ServiceError | undefined> {
  return p.then(
    () => undefined,
    (e: unknown) => e as ServiceError,
  );
}

/** A spec whose process runs a shell script (checker calls, mostly). */
export function withScript(spec: Spec, script: string): Spec {
  return {
    ...spec,
    process: {
      ...(spec.process ?? { user: { uid: 0, gid: 0 }, cwd: '/' }),
      args: ['sh', '-c', script],
    },
  };
}
