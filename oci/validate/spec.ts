import type { Spec } from '../spec.js';
import { SpecError } from './error.js';
import { bool, object, optStr, str } from './fields.js';
import { validateHooks } from './hooks.js';
import { validateLinux } from './linux.js';
import { validateMounts } from './mounts.js';
import { validateProcess } from './process.js';
import type { ResourcesOptions } from './resources/index.js';

/** Parses JSON text, refusing what is not a JSON object, naming `field`. */
export function parseJsonObject(json: string, field: string): object {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch (err) {
    throw new SpecError(field, (err as Error).message);
  }
  return object(value, field);
}

/**
 * An OCI config (runtime-spec config.md, config-linux.md): every field kapsel
 * reads has the right shape, and every check that needs no guest is made, so
 * the runtime refuses a bad spec before a VM boots and the agent with the
 * same words. Text is parsed first. Unknown fields are ignored, as runc's
 * JSON decoding ignores them.
 * @throws SpecError naming the field (`process.capabilities.bounding[2]`)
 */
export function validateSpec(value: unknown, opts: ResourcesOptions = {}): Spec {
  const o =
    typeof value === 'string'
      ? (parseJsonObject(value, 'config') as Record<string, unknown>)
      : object(value, 'config');
  optStr(o, 'ociVersion', 'config');
  validateProcess(o['process'], 'process');
  if (o['root'] === undefined || o['root'] === null) throw new SpecError('root', 'missing');
  const root = object(o['root'], 'root');
  const path = str(root['path'], 'root.path');
  if (path === '') throw new SpecError('root.path', 'must not be empty');
  if (root['readonly'] !== undefined) bool(root['readonly'], 'root.readonly');
  const hostname = optStr(o, 'hostname', 'config');
  optStr(o, 'domainname', 'config');
  validateMounts(o['mounts'], 'mounts');
  if (o['hooks'] !== undefined && o['hooks'] !== null) validateHooks(o['hooks'], 'hooks');
  if (o['annotations'] !== undefined && o['annotations'] !== null) {
    for (const [k, v] of Object.entries(object(o['annotations'], 'annotations'))) {
      str(v, `annotations[${JSON.stringify(k)}]`);
    }
  }
  const { namespaces } = validateLinux(o['linux'], opts);
  if (hostname !== undefined && hostname !== '' && !namespaces.has('uts')) {
    // runc refuses a hostname without a UTS namespace: it would rename the host.
    throw new SpecError('hostname', 'needs a uts namespace in linux.namespaces');
  }
  return o as unknown as Spec;
}
