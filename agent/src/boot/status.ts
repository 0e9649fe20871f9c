/**
 * How the agent's code was compiled: from the V8 code cache made with the
 * image (`accepted`), from source because the cache was refused (`rejected`:
 * another node binary or other V8 flags) or absent (`missing`), or
 * `not-used` when the agent was started without the boot loader
 * (agent.mjs, standalone on a host).
 */
export type CodeCacheStatus = 'accepted' | 'rejected' | 'missing' | 'not-used';

/** The global the boot loader (code-cache.ts) sets before running the bundle. */
export const CODE_CACHE_STATUS_KEY = '__kapselCodeCache';

export function codeCacheStatus(): CodeCacheStatus {
  const v = (globalThis as Record<string, unknown>)[CODE_CACHE_STATUS_KEY];
  return v === 'accepted' || v === 'rejected' || v === 'missing' ? v : 'not-used';
}
