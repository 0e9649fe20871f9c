import { StateStore, toOciState } from '../container/state.js';

/**
 * `kapsel list [--format table|json] [-q]`: every container under --root,
 * laid out like runc's (a tabwriter with minwidth 12, padding 3).
 */
export async function list(root: string, format: string, quiet: boolean): Promise<void> {
  const store = new StateStore(root);
  await store.ensureRoot();
  const states = [];
  for (const id of await store.ids()) {
    const r = await store.load(id).catch(() => undefined);
    if (r !== undefined) states.push(toOciState(r));
  }
  if (quiet) {
    process.stdout.write(states.map((s) => `${s.id}\n`).join(''));
    return;
  }
  if (format === 'json') {
    process.stdout.write(`${JSON.stringify(states.length === 0 ? null : states)}\n`);
    return;
  }
  const rows = [
    ['ID', 'PID', 'STATUS', 'BUNDLE', 'CREATED', 'OWNER'],
    ...states.map((s) => [s.id, String(s.pid), s.status, s.bundle, s.created, 'root']),
  ];
  process.stdout.write(table(rows));
}

function table(rows: string[][]): string {
  const widths = (rows[0] ?? []).map((_, c) =>
    Math.max(12, ...rows.map((r) => (r[c] ?? '').length + 3)),
  );
  return rows
    .map(
      (r) =>
        r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c] ?? 12))).join('') +
        '\n',
    )
    .join('');
}
