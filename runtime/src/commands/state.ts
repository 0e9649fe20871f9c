import { StateStore, toOciState } from '../container/state.js';

/** `kapsel state ID`: the OCI state JSON, indented as runc prints it. */
export async function state(root: string, id: string): Promise<void> {
  const record = await new StateStore(root).load(id);
  process.stdout.write(`${JSON.stringify(toOciState(record), null, 2)}\n`);
}
