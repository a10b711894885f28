/**
 * A one-line reason for an error, for operators. Connection failures to a
 * name with several addresses arrive as an AggregateError with an empty
 * message; the first inner error says what happened.
 */
export function errorText(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) {
    return errorText(error.errors[0]);
  }
  const text = error instanceof Error ? error.message : String(error);
  return text || (error as { code?: string } | null)?.code || 'unknown error';
}
