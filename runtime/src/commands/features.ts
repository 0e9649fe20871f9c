import { version } from 'node:process';
import { OCI_VERSION } from '../../../oci/spec.js';

/**
 * `kapsel features`: what this runtime supports, in runc's JSON shape
 * (runtime-spec features.md), so engines can ask before they use it.
 */
export function features(): void {
  const out = {
    ociVersionMin: '1.0.0',
    ociVersionMax: OCI_VERSION,
    hooks: [
      'prestart',
      'createRuntime',
      'createContainer',
      'startContainer',
      'poststart',
      'poststop',
    ],
    mountOptions: [
      'bind',
      'rbind',
      'ro',
      'rw',
      'nosuid',
      'suid',
      'nodev',
      'dev',
      'noexec',
      'exec',
      'relatime',
      'norelatime',
      'strictatime',
      'noatime',
      'nodiratime',
      'private',
      'rprivate',
      'shared',
      'rshared',
      'slave',
      'rslave',
      'remount',
      'sync',
      'async',
      'mand',
      'nomand',
    ],
    linux: {
      namespaces: ['cgroup', 'ipc', 'mount', 'network', 'pid', 'uts'],
      cgroup: { v1: false, v2: true, systemd: false, systemdUser: false },
      seccomp: { enabled: false },
      apparmor: { enabled: false },
      selinux: { enabled: false },
    },
    annotations: {
      'io.kapsel.runtime': 'vm',
      'io.kapsel.node.version': version,
    },
  };
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
}
