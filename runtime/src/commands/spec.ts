import { access, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { OCI_VERSION, type Spec } from '../../../oci/spec.js';
import { RuntimeError } from '../sys/errors.js';

const CAPS = ['CAP_AUDIT_WRITE', 'CAP_KILL', 'CAP_NET_BIND_SERVICE'];

/**
 * What `runc spec` writes (runc libcontainer/specconv/example.go), field by
 * field: the ambient set without an inheritable one included (runc warns at
 * run time that it cannot raise it, and so does kapsel). Differences: the
 * ociVersion is kapsel's, the hostname "kapsel", and a cgroup namespace is
 * listed, as runc does on a cgroup v2 host: the guest is always one.
 */
export function defaultSpec(): Spec {
  const mount = (destination: string, source: string, options: string[]) => ({
    destination,
    type: source === 'tmpfs' || source === 'shm' ? 'tmpfs' : source,
    source,
    options,
  });
  return {
    ociVersion: OCI_VERSION,
    process: {
      terminal: true,
      user: { uid: 0, gid: 0 },
      args: ['sh'],
      env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'TERM=xterm'],
      cwd: '/',
      capabilities: {
        bounding: [...CAPS],
        effective: [...CAPS],
        permitted: [...CAPS],
        ambient: [...CAPS],
      },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: 1024, soft: 1024 }],
      noNewPrivileges: true,
    },
    root: { path: 'rootfs', readonly: true },
    hostname: 'kapsel',
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc' },
      mount('/dev', 'tmpfs', ['nosuid', 'strictatime', 'mode=755', 'size=65536k']),
      mount('/dev/pts', 'devpts', [
        'nosuid',
        'noexec',
        'newinstance',
        'ptmxmode=0666',
        'mode=0620',
        'gid=5',
      ]),
      mount('/dev/shm', 'shm', ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k']),
      mount('/dev/mqueue', 'mqueue', ['nosuid', 'noexec', 'nodev']),
      mount('/sys', 'sysfs', ['nosuid', 'noexec', 'nodev', 'ro']),
      mount('/sys/fs/cgroup', 'cgroup', ['nosuid', 'noexec', 'nodev', 'relatime', 'ro']),
    ],
    linux: {
      resources: { devices: [{ allow: false, access: 'rwm' }] },
      namespaces: [
        { type: 'pid' },
        { type: 'network' },
        { type: 'ipc' },
        { type: 'uts' },
        { type: 'mount' },
        { type: 'cgroup' },
      ],
      maskedPaths: [
        '/proc/acpi',
        '/proc/asound',
        '/proc/kcore',
        '/proc/keys',
        '/proc/latency_stats',
        '/proc/timer_list',
        '/proc/timer_stats',
        '/proc/sched_debug',
        '/sys/firmware',
        '/proc/scsi',
      ],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  };
}

/** `kapsel spec [--bundle DIR]`: writes the default config.json, as `runc spec` does. */
export async function spec(bundle: string): Promise<void> {
  const target = join(resolve(bundle), 'config.json');
  const exists = await access(target).then(
    () => true,
    () => false,
  );
  if (exists) throw new RuntimeError('File config.json exists. Remove it first');
  // runc indents with tabs (json.MarshalIndent(spec, "", "\t")).
  await writeFile(target, JSON.stringify(defaultSpec(), null, '\t'));
}
