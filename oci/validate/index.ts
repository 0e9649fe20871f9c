// The one validator of OCI documents, shared by the runtime (before any VM
// boots) and the agent (the guest also checks what only it can know):
//   validateSpec(config)       config.json, parsed or as text
//   validateProcess(process)   an exec's process.json
//   validateResources(res)     linux.resources, or an update's
// Each throws SpecError with the field's JSON path.
export { SpecError } from './error.js';
export { CAPABILITY_NAMES, CAPABILITY_SETS } from './capabilities.js';
export { RLIMIT_NAMES } from './rlimits.js';
export { validateSpec, parseJsonObject } from './spec.js';
export { given } from './fields.js';
export { validateProcess, checkId } from './process.js';
export { validateMounts, isBindMount } from './mounts.js';
export { sysctlNamespace, NAMESPACE_TYPES, PROPAGATIONS } from './linux.js';
export { validateResources, type ResourcesOptions } from './resources/index.js';
export { swapMaxValue } from './resources/memory.js';
export { parseCpuList } from './resources/cpulist.js';
export { V1_ONLY_RULES, type Ignored, type IgnoreSink } from './resources/v1-only.js';
