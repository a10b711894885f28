import { Counter, Gauge, type Registry } from 'prom-client';
import type { ServedCertificate } from './certificate-source.js';

export const RELOAD_RESULTS = ['reloaded', 'refused'] as const;
export type ReloadResult = (typeof RELOAD_RESULTS)[number];
export const ORDER_RESULTS = ['success', 'failure'] as const;
export type OrderResult = (typeof ORDER_RESULTS)[number];

/**
 * The certificate layer's metrics, on a registry the caller owns (the admin
 * listener's). Label values are bounded: `domain` takes only the names of
 * configured certificates (ACME_DOMAINS, the files of TLS_CERT_DIR).
 */
export class TlsMetrics {
  readonly orders: Counter<'result'>;
  readonly reloads: Counter<'source' | 'result'>;
  private served: () => readonly ServedCertificate[] = () => [];

  constructor(registry: Registry) {
    const served = () => this.served();
    new Gauge({
      name: 'togather_proxy_certificate_expiry_seconds',
      help: 'When each served certificate expires (notAfter), as a Unix time in seconds; alert on it minus time()',
      labelNames: ['domain'],
      registers: [registry],
      // Summed over cluster workers it would mean nothing: the earliest expiry is what to alert on.
      aggregator: 'min',
      collect() {
        this.reset();
        for (const certificate of served()) {
          const expiry = certificate.certificate.info.notAfter.getTime() / 1000;
          this.set({ domain: certificate.name }, expiry);
        }
      },
    });
    this.orders = new Counter({
      name: 'togather_proxy_acme_orders_total',
      help: 'ACME orders this proxy placed, by result',
      labelNames: ['result'],
      registers: [registry],
    });
    for (const result of ORDER_RESULTS) this.orders.inc({ result }, 0);
    this.reloads = new Counter({
      name: 'togather_proxy_certificate_reloads_total',
      help: 'Certificate files read again after a change, by result (refused: unreadable or mismatched, the old one stays)',
      labelNames: ['source', 'result'],
      registers: [registry],
    });
  }

  /** What the expiry gauge reads at scrape time. */
  attach(served: () => readonly ServedCertificate[]): void {
    this.served = served;
  }

  countOrder(result: OrderResult): void {
    this.orders.inc({ result });
  }

  countReload(source: 'file' | 'directory', result: ReloadResult): void {
    this.reloads.inc({ source, result });
  }
}
