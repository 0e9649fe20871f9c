/** The host-side VM driver: QEMU + virtiofsd children, QMP, console, KVM probe. */
export { AGENT_PORT_ID, AGENT_PORT_NAME } from './config.js';
export type { Accel, VmConfig, VmShare } from './config.js';
export { Vm } from './vm.js';
export type { BootOptions } from './vm.js';
export type { ExitStatus } from './child.js';
export { VmError } from './errors.js';
export { GuestConsole } from './console.js';
export type { ConsoleLine } from './console.js';
export { Timeline } from './timeline.js';
export { QmpClient, QmpCommandError } from './qmp.js';
export type { QmpCommands, QmpEvent, QmpGreeting } from './qmp.js';
export { chooseAccel, probeKvm } from './kvm.js';
export type { AccelVerdict, KvmProbeResult } from './kvm.js';
export { qemuArgs, kernelCommandLine, BASE_KERNEL_PARAMS } from './qemu-args.js';
export { Virtiofsd, virtiofsdArgs } from './virtiofsd.js';
export type { VirtiofsdOptions } from './virtiofsd.js';
