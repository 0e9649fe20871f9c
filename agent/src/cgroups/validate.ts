// linux.resources (from the spec or an UpdateContainer) are checked by the
// one validator in oci/validate, with the guest's CPUs and memory nodes,
// before any cgroup is touched.
import type { LinuxResources } from '../../../oci/resources.js';
import { validateResources as validate, type IgnoreSink } from '../../../oci/validate/index.js';
import { specErrors } from '../errors.js';
import type { HostLimits } from './types.js';

/** Validates linux.resources; absent means nothing to set. @throws AgentError invalid-argument */
export function validateResources(
  value: unknown,
  limits: HostLimits,
  ignore?: IgnoreSink,
): LinuxResources {
  return specErrors(() => validate(value, { limits, ...(ignore ? { ignore } : {}) }));
}
