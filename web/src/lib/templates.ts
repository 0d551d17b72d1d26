// Pure helpers of the sandbox Templates page.

/** The build form's commands: one per line, blank lines and surrounding spaces dropped. */
export function parseCommands(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
}

/** Why the build form cannot be sent, or null. */
export function buildFormError(name: string, commands: string[]): string | null {
  if (!/^[a-z0-9][a-z0-9._-]{0,62}$/.test(name)) return "Name: 1-63 characters of a-z 0-9 - _ ., starting with a letter or digit";
  if (["base", "code-interpreter-v1", "busybox"].includes(name)) return "Name: that is a builtin template";
  if (commands.length === 0) return "Give at least one command";
  if (commands.length > 64) return "At most 64 commands";
  return null;
}

/** "hits / (hits + misses)" as a percentage, or "-" before any build. */
export function hitRate(hits: number, misses: number): string {
  const total = hits + misses;
  if (total === 0) return "-";
  return `${Math.round((hits * 100) / total)}%`;
}

/** The first 12 characters of a digest or cache key. */
export function shortKey(key: string | null | undefined): string {
  return key ? key.slice(0, 12) : "-";
}
