/** A user error on the command line: printed with usage, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** A command that ran and failed for a reason the operator must read: exit code 1. */
export class CommandFailed extends Error {
  override name = 'CommandFailed';
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}
