/**
 * Sets `values` in this process's environment, which the kapsel processes a
 * test spawns inherit, and returns what puts each variable back as it was
 * (unset again if it was unset).
 */
export function overrideEnv(values: Record<string, string>): () => void {
  const saved = Object.keys(values).map((k): [string, string | undefined] => [k, process.env[k]]);
  Object.assign(process.env, values);
  return () => {
    for (const [k, v] of saved) {
      if (v === undefined) Reflect.deleteProperty(process.env, k);
      else process.env[k] = v;
    }
  };
}
