// Who did what, in words: audit actors are user ids, or the server itself.

/** What the server does on its own is recorded as this actor (bootstrap, a sandbox's TTL). */
export const SYSTEM_ACTOR = "system";

/** The audit source of what a sandbox's TTL does (roost-control's TTL_SOURCE). */
const SOURCE_LABELS: Record<string, string> = { "sandbox-ttl": "TTL" };

/** An entry's actor for people: a user's name, or "Roost" (with why) for the server. */
export function actorLabel(entry: { actor: string; source?: string | null }, userName: (id: string) => string): string {
  if (entry.actor === SYSTEM_ACTOR) {
    const why = entry.source ? SOURCE_LABELS[entry.source] : undefined;
    return why ? `Roost (${why})` : "Roost";
  }
  return userName(entry.actor);
}
