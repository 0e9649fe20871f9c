import { defineConfig } from 'vitest/config';

// Three levels, as CONVENTIONS asks: unit (no root, fakes of the native
// surface), host (the real agent standalone on a unix socket, as root) and
// vm (a real QEMU guest). Each level reports what it cannot run as skipped.
export default defineConfig({
  test: {
    projects: [
      { test: { name: 'unit', include: ['test/unit/**/*.test.ts'] } },
      {
        test: {
          name: 'host',
          include: ['test/host/**/*.test.ts'],
          // spec-compat.test.ts and cli.test.ts start real sandboxes too.
          globalSetup: ['test/support/template-dir-setup.ts'],
          testTimeout: 60_000,
          hookTimeout: 60_000,
        },
      },
      {
        test: {
          name: 'vm',
          include: ['test/vm/**/*.test.ts'],
          globalSetup: ['test/support/template-dir-setup.ts'],
          testTimeout: 600_000,
          hookTimeout: 600_000,
          fileParallelism: false,
        },
      },
      {
        // The VM suites of file semantics again, with shared_fs = "virtio-9p"
        // (QEMU's 9p server, copy-on-write template clones) instead of
        // virtio-fs; in a group of its own (sequence.groupOrder), so it does
        // not add a third stream of VMs beside vm and docker on the two cores.
        test: {
          name: 'vm-9p',
          include: ['test/vm/shared-fs.test.ts', 'test/vm/run.test.ts'],
          env: { KAPSEL_SHARED_FS: 'virtio-9p' },
          globalSetup: ['test/support/template-dir-setup.ts'],
          testTimeout: 600_000,
          hookTimeout: 600_000,
          fileParallelism: false,
          sequence: { groupOrder: 1 },
        },
      },
      {
        // Docker, containerd (ctr) and Podman driving bin/kapsel, each
        // against runc too; they start private daemons, one file at a time.
        test: {
          name: 'docker',
          include: ['test/docker/**/*.test.ts'],
          globalSetup: ['test/support/template-dir-setup.ts'],
          testTimeout: 600_000,
          hookTimeout: 600_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
