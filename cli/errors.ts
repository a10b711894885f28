/** A user error on the command line: printed with usage, exit code 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** Every bad flag of a command at once: one line for one problem, a list for several. */
export function usageErrorOf(problems: readonly string[]): UsageError {
  if (problems.length === 1) return new UsageError(problems[0]!);
  return new UsageError(
    `${problems.length} bad flags:\n${problems.map((p) => `  - ${p}`).join('\n')}`,
  );
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
