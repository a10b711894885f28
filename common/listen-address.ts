/** Host names and addresses that only this machine can reach. */
const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/;

export function isLoopbackHost(host: string): boolean {
  return LOOPBACK.test(host);
}

/** The URL of a listening address (http unless told), an IPv6 address in brackets. */
export function urlOf(
  address: { address: string; port: number },
  scheme: 'http' | 'https' = 'http',
): string {
  const host = address.address.includes(':') ? `[${address.address}]` : address.address;
  return `${scheme}://${host}:${address.port}`;
}
