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
