/**
 * `togather deploy history | head -3`: once the reader of stdout (or stderr)
 * has gone, Node reports EPIPE as an 'error' event that nobody handles, which
 * kills the command with a stack trace. Instead the rest of that stream's
 * output is dropped, quietly, and the command finishes what it was doing:
 * a closed pager must never cut a deploy or a switch half-way.
 */
export function dropOutputOnClosedPipe(stream: NodeJS.WriteStream): void {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
    stream.write = (() => true) as typeof stream.write;
  });
}
