/** The database could not be reached (as opposed to a query it refused). */
export function isConnectionError(error: unknown): boolean {
  if (error instanceof AggregateError) return error.errors.some(isConnectionError);
  const code = (error as { code?: unknown } | null)?.code;
  // Node socket errors, and PostgreSQL's class 08 (connection exception) and 57P (shutdown).
  if (
    typeof code === 'string' &&
    (code.startsWith('E') || code.startsWith('08') || code.startsWith('57P'))
  ) {
    return true;
  }
  // pg's pool gives up waiting for a connection with a plain Error.
  const message = error instanceof Error ? error.message : '';
  return /timeout exceeded when trying to connect|Connection terminated/i.test(message);
}
