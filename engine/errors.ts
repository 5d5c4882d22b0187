/**
 * Errors a user can meet. Each carries a sentence that says what to do next, and an
 * exit code for the CLI (documented in the README).
 */
export class CairnError extends Error {
  constructor(message: string, readonly exitCode = 1, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "CairnError";
  }
}

/**
 * Stops work whose caller gave up (a cancelled job): called between packs, files
 * or trees, so the work ends at a point where `state` holds. Cancellation is the
 * caller's doing, so the message only says what was left behind.
 */
export function stopIfAborted(signal: AbortSignal | undefined, state: string): void {
  if (signal?.aborted) throw new CairnError(state);
}

export class RepositoryNotFoundError extends CairnError {
  constructor(location: string) {
    super(`there is no Cairn repository at ${location}: check the path (-r / CAIRN_REPOSITORY) or create one with "cairn init"`, 10);
    this.name = "RepositoryNotFoundError";
  }
}

export class LockedError extends CairnError {
  constructor(detail: string) {
    super(`the repository is locked: ${detail}. Wait for that job to finish, or retry with --retry-lock 5m; a lock from a crashed process expires on its own`, 11);
    this.name = "LockedError";
  }
}

export class WrongPasswordError extends CairnError {
  constructor() {
    super("wrong password: no key in this repository opens with it (check CAIRN_PASSWORD / CAIRN_PASSWORD_FILE)", 12);
    this.name = "WrongPasswordError";
  }
}
