import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Spec } from '../../../oci/spec.js';
import { settings } from '../config/settings.js';
import { placementOf, type Placement } from '../container/pod.js';
import type { ShimFlags } from './flags.js';
import { podKey } from './address.js';

/** The bundle the shim is called for: -bundle, else the working directory containerd gave. */
export function bundleOf(f: ShimFlags): string {
  return f.bundle !== '' ? f.bundle : process.cwd();
}

/**
 * Which pod the task of `f` belongs to (the CRI annotations of its
 * config.json, as the runc path reads them) and that pod's shim key;
 * a task without them is a pod of its own.
 */
export function podOf(f: ShimFlags): Placement & { key: string; netnsPath?: string } {
  let spec: Spec | undefined;
  try {
    spec = JSON.parse(readFileSync(join(bundleOf(f), 'config.json'), 'utf8')) as Spec;
  } catch {
    spec = undefined;
  }
  const placement = placementOf(f.id, spec?.annotations);
  const netnsPath = spec?.linux?.namespaces?.find((n) => n.type === 'network')?.path;
  return {
    ...placement,
    key: podKey(f.address, f.namespace, placement.sandboxId),
    ...(netnsPath === undefined || netnsPath === '' ? {} : { netnsPath }),
  };
}

/** The serving shim's log: runtime.shim_log (KAPSEL_SHIM_LOG), else kapsel-shim.log in the sandbox's bundle. */
export function shimLogOf(f: ShimFlags): string {
  const configured = settings().runtime.shim_log;
  return configured !== '' ? configured : join(bundleOf(f), 'kapsel-shim.log');
}
