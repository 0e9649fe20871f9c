import { spawn } from 'node:child_process';
import type { Hook, Hooks, State } from '../../../oci/spec.js';
import { RuntimeError } from '../sys/errors.js';

export type HookKind = keyof Hooks;

/**
 * Runs the spec's hooks of one kind on the host, in order, each with the
 * container's state JSON on stdin (runtime-spec config.md "POSIX-platform
 * Hooks"). The first failure stops the run and fails the operation, with
 * runc's wording. createContainer and startContainer hooks belong in the
 * container's namespaces by the spec; in a VM those are the guest's, so
 * kapsel runs them on the host too (docs/design.md says so).
 */
export async function runHooks(
  hooks: Hooks | undefined,
  kind: HookKind,
  state: State,
): Promise<void> {
  for (const [i, hook] of (hooks?.[kind] ?? []).entries()) {
    try {
      await runHook(hook, state);
    } catch (err) {
      throw new RuntimeError(`error running ${kind} hook #${i}: ${(err as Error).message}`, 1, {
        cause: err,
      });
    }
  }
}

function runHook(hook: Hook, state: State): Promise<void> {
  const [argv0, ...rest] = hook.args ?? [hook.path];
  return new Promise((resolve, reject) => {
    const child = spawn(hook.path, rest, {
      argv0: argv0 ?? hook.path,
      env: Object.fromEntries((hook.env ?? []).map((e) => splitEnv(e))),
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer =
      hook.timeout !== undefined && hook.timeout > 0
        ? setTimeout(() => {
            child.kill('SIGKILL');
          }, hook.timeout * 1000)
        : undefined;
    child.stdin.on('error', () => undefined); // a hook need not read its stdin
    child.stdin.end(JSON.stringify(state));
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) {
        resolve();
        return;
      }
      const status =
        signal === 'SIGKILL' && timer !== undefined
          ? `timeout after ${hook.timeout ?? 0}s`
          : signal
            ? `signal: ${signal}`
            : `exit status ${code ?? '?'}`;
      reject(new Error(`${status}, stdout: ${stdout.trim()}, stderr: ${stderr.trim()}`));
    });
  });
}

function splitEnv(e: string): [string, string] {
  const i = e.indexOf('=');
  return i < 0 ? [e, ''] : [e.slice(0, i), e.slice(i + 1)];
}
