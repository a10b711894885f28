/**
 * Host name → value, with `*.example.org` entries matching one label below
 * (`a.example.org`, not `example.org` nor `a.b.example.org`, as RFC 6125
 * matching does). Exact names win over wildcards.
 */
export class HostIndex<T> {
  private readonly entries = new Map<string, T>();

  get size(): number {
    return this.entries.size;
  }

  set(name: string, value: T): void {
    this.entries.set(name.toLowerCase(), value);
  }

  delete(name: string): void {
    this.entries.delete(name.toLowerCase());
  }

  /** The value for an SNI name (any case, a trailing dot allowed). */
  lookup(servername: string): T | undefined {
    let name = servername.toLowerCase();
    if (name.endsWith('.')) name = name.slice(0, -1);
    const exact = this.entries.get(name);
    if (exact !== undefined) return exact;
    const dot = name.indexOf('.');
    return dot > 0 ? this.entries.get(`*${name.slice(dot)}`) : undefined;
  }

  values(): IterableIterator<T> {
    return this.entries.values();
  }

  keys(): IterableIterator<string> {
    return this.entries.keys();
  }
}
