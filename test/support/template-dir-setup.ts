import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * vitest globalSetup of the projects that start sandboxes (host, vm,
 * docker): templates are on by
 * default (runtime/src/sandbox/template/settings.ts), and a test run must
 * not leave its templates (~170 MB each) in /var/lib/kapsel/templates. So
 * the run gets its own KAPSEL_TEMPLATE_DIR, made here and removed at the
 * end. It is set in this process's environment before vitest forks its
 * workers, so the workers, the kapsel processes they spawn and the engines
 * they start (dockerd, containerd, and through them the shims and kapsel)
 * all inherit it. A KAPSEL_TEMPLATE_DIR given by the caller is kept, and
 * not removed.
 */
export default function setup(): () => void {
  const given = process.env['KAPSEL_TEMPLATE_DIR'];
  if (given !== undefined && given !== '') return () => undefined;
  const dir = mkdtempSync(join(tmpdir(), 'kapsel-test-templates-'));
  process.env['KAPSEL_TEMPLATE_DIR'] = dir;
  return () => {
    rmSync(dir, { recursive: true, force: true });
    delete process.env['KAPSEL_TEMPLATE_DIR'];
  };
}
