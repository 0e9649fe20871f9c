// What the host does with a bundle's spec before any VM boots: the shared
// validator (oci/validate) with runc's words, the settings kapsel drops said
// once in the log, paths made absolute as the runtime spec reads them, the
// caller's rlimits for the ones the spec leaves out, and runc's checks of
// mount targets inside the rootfs, which is visible here.
import type { Logger } from 'pino';
import type { Mount, Spec } from '../../../oci/spec.js';
import {
  given,
  isBindMount,
  SpecError,
  validateSpec,
  type Ignored,
} from '../../../oci/validate/index.js';
import { RuntimeError } from '../sys/errors.js';
import { callerRlimits, withDefaultRlimits } from '../sys/rlimits.js';
import { checkMountTargets } from './mount-targets.js';
import { isAbsolute, resolve } from 'node:path';

/**
 * Validates `spec`, then returns the spec the guest is given. Refusals are
 * the validator's messages; what is ignored is logged as a warning.
 * @throws RuntimeError with the validator's message (runc-style: field: reason)
 */
export async function prepareHostSpec(
  spec: Spec,
  bundleDir: string,
  rootfs: string,
  log: Logger,
): Promise<Spec> {
  const ignored: Ignored[] = [];
  try {
    validateSpec(spec, { ignore: (i) => ignored.push(i) });
  } catch (err) {
    if (err instanceof SpecError) throw new RuntimeError(err.message, 1, { cause: err });
    throw err;
  }
  for (const i of ignored) {
    log.warn(`${i.field} is ignored: ${i.why} (runc ignores it on cgroup v2 too)`);
  }
  warnLsm(spec, log);
  warnAmbient(spec, log);
  const mounts = (spec.mounts ?? []).map((m) => absoluteMount(m, bundleDir, log));
  await checkMountTargets(rootfs, mounts);
  const out: Spec = { ...spec, mounts };
  if (spec.process !== undefined) {
    out.process = {
      ...spec.process,
      rlimits: withDefaultRlimits(spec.process.rlimits, await callerRlimits()),
    };
  }
  return out;
}

/**
 * The guest has no AppArmor or SELinux: one warning naming what is dropped.
 * runc refuses such labels on a host without the LSM; Docker and Podman set
 * them whenever their host has one, so kapsel runs the container without.
 */
function warnLsm(spec: Spec, log: Logger): void {
  const set: string[] = [];
  if (nonEmpty(spec.process?.apparmorProfile))
    set.push(`process.apparmorProfile ${JSON.stringify(spec.process?.apparmorProfile)}`);
  if (nonEmpty(spec.process?.selinuxLabel))
    set.push(`process.selinuxLabel ${JSON.stringify(spec.process?.selinuxLabel)}`);
  if (nonEmpty(spec.linux?.mountLabel))
    set.push(`linux.mountLabel ${JSON.stringify(spec.linux?.mountLabel)}`);
  if (set.length > 0) {
    log.warn(
      `${set.join(', ')} ignored: the guest kernel has no AppArmor or SELinux to apply them`,
    );
  }
}

/**
 * runc raises ambient capabilities one by one and only warns when the
 * kernel refuses (it does unless the capability is also permitted and
 * inheritable): `runc spec` itself writes such a set. The agent leaves
 * those out; the warning is runc's.
 */
function warnAmbient(spec: Spec, log: Logger): void {
  const caps = spec.process?.capabilities;
  if (!given(caps)) return;
  const has = (set: string[] | undefined, c: string): boolean =>
    (set ?? []).some((x) => x.toUpperCase() === c.toUpperCase());
  for (const c of caps.ambient ?? []) {
    if (!has(caps.permitted, c) || !has(caps.inheritable, c)) {
      log.warn(`can't raise ambient capability ${c.toUpperCase()}: operation not permitted`);
    }
  }
}

function nonEmpty(s: string | undefined): boolean {
  return typeof s === 'string' && s !== '';
}

/**
 * runtime-spec config.md: a relative bind source is relative to the bundle;
 * a relative destination is taken in the container's root, as runc does
 * with a warning (specconv createLibcontainerMount).
 */
function absoluteMount(m: Mount, bundleDir: string, log: Logger): Mount {
  const out: Mount = { ...m };
  if (!isAbsolute(m.destination)) {
    log.warn(
      `mount destination ${m.destination} is not absolute. Support for non-absolute mount destinations will be removed in a future release.`,
    );
    out.destination = `/${m.destination}`;
  }
  if (isBindMount(m) && m.source !== undefined && !isAbsolute(m.source)) {
    out.source = resolve(bundleDir, m.source);
  }
  return out;
}
