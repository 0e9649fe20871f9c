import type { State } from '../../../oci/spec.js';

export type Status = State['status'];

/**
 * Which verb is legal in which state, with runc's refusal texts
 * (libcontainer's container_linux.go and the verbs in runc's main package),
 * so engines that match on them keep working. Each function returns the
 * refusal, or undefined when the verb may go ahead.
 */

/** `start`: only a created container (runc start.go). */
export function canStart(s: Status): string | undefined {
  switch (s) {
    case 'created':
      return undefined;
    case 'stopped':
      return 'cannot start a container that has stopped';
    case 'running':
      return 'cannot start an already running container';
    default:
      return `cannot start a container in the ${s} state`;
  }
}

/** `kill`: anything not stopped; a created or paused container can be signalled. */
export function canKill(s: Status): string | undefined {
  return s === 'stopped' || s === 'creating' ? 'container not running' : undefined;
}

/**
 * `delete`: a stopped or created container (runc destroys a created one
 * outright); with --force, anything.
 */
export function canDelete(s: Status, force: boolean, id: string): string | undefined {
  if (force || s === 'stopped' || s === 'created') return undefined;
  return `cannot delete container ${id} that is not stopped: ${s}`;
}

/** `exec`: a running container only (runc exec.go). */
export function canExec(s: Status): string | undefined {
  if (s === 'running') return undefined;
  if (s === 'paused') return 'cannot exec in a paused container';
  if (s === 'stopped') return 'cannot exec in a stopped container';
  return 'cannot exec in a container that has not been started';
}

/** `pause`: libcontainer freezes running and created containers. */
export function canPause(s: Status): string | undefined {
  return s === 'running' || s === 'created' ? undefined : 'container not running';
}

/** `resume`: only a paused container (libcontainer ErrNotPaused). */
export function canResume(s: Status): string | undefined {
  return s === 'paused' ? undefined : 'container not paused';
}

/** `update`, `ps`, `events`: a container whose processes still exist. */
export function canInspect(s: Status): string | undefined {
  return s === 'stopped' || s === 'creating' ? 'container not running' : undefined;
}
