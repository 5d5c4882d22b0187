const MAX_ITEMS = 10;
const MAX_LENGTH = 240;

/**
 * Keeps a list of messages small enough for a workflow payload: Temporal stores
 * every result in the history, and a backup can meet thousands of unreadable files.
 * The first few are kept (each shortened), then one line counts the rest.
 */
export function briefList(messages: readonly string[], what = "more"): string[] {
  const kept = messages.slice(0, MAX_ITEMS).map((m) => (m.length > MAX_LENGTH ? `${m.slice(0, MAX_LENGTH - 1)}…` : m));
  if (messages.length > MAX_ITEMS) kept.push(`… and ${messages.length - MAX_ITEMS} ${what}`);
  return kept;
}
