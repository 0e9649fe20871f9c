/**
 * The C library's text of a failed call's errno, lower-case as Go's
 * PathError prints it ("no such file or directory"), taken from a Node
 * fs error's message ("ENOENT: no such file or directory, open '/x'").
 * Anything else comes back as its message (or `fallback`, when given).
 */
export function errnoText(err: unknown, fallback?: string): string {
  const message = err instanceof Error ? err.message : String(err);
  return /^[A-Z0-9]+: ([^,]+),/.exec(message)?.[1] ?? fallback ?? message;
}
