import type { SecureContext } from 'node:tls';
import type { Logger } from 'pino';
import type { AcmeFleet } from './acme-fleet.js';
import type { CertificateIssuer } from './acme-issuer.js';
import { ACME_RETRY, backoffDelay, type BackoffPolicy } from './backoff.js';
import {
  CertificateRejected,
  loadCertificate,
  type CertificatePem,
  type LoadedCertificate,
} from './certificate-pair.js';
import {
  ChangeListeners,
  type CertificateSource,
  type ServedCertificate,
} from './certificate-source.js';
import type { CertificateStore } from './cert-store.js';
import type { TlsMetrics } from './tls-metrics.js';

/** setTimeout holds at most 2^31-1 ms; later renewals are re-checked then. */
const MAX_TIMER_MS = 2_147_483_647;

export interface AcmeManagerOptions {
  domains: readonly string[];
  /** ACME_RENEW_BEFORE. */
  renewBeforeMs: number;
  store: CertificateStore;
  issuer: CertificateIssuer;
  fleet: AcmeFleet;
  metrics: TlsMetrics;
  logger: Logger;
  /** Delays after failed orders (default ACME_RETRY). */
  retry?: BackoffPolicy;
  /** While another proxy holds the ordering lock, look at the store again after this (default 30 s). */
  lockWaitMs?: number;
  /** Reads the store for what other proxies stored, should a message be lost (default 5 min). */
  storePollMs?: number;
}

/** One domain in /admin/status; times are ISO strings or null. */
export interface AcmeDomainStatus {
  domain: string;
  serial: string | null;
  not_before: string | null;
  not_after: string | null;
  renew_at: string | null;
  /** The last time this proxy placed an order for it. */
  last_attempt: string | null;
  /** Why the last attempt failed; null once one succeeds. */
  last_error: string | null;
  failures: number;
  next_attempt: string | null;
}

interface DomainState {
  domain: string;
  current?: LoadedCertificate;
  /** Obtained but not yet stored (the store failed): stored at the next attempt. */
  unsaved?: CertificatePem;
  lastAttempt?: Date;
  lastError?: string;
  failures: number;
  nextAttempt?: Date;
  timer?: NodeJS.Timeout;
}

const iso = (date: Date | undefined) => date?.toISOString() ?? null;

/**
 * Keeps a certificate for every ACME domain: takes what the store has,
 * orders when it is missing or due, retries failures with a bounded,
 * jittered backoff while the old certificate stays in service, and picks up
 * what other proxies of the fleet stored. It is the CertificateSource of
 * the ACME domains.
 *
 * A certificate is due ACME_RENEW_BEFORE ahead of its expiry, but never
 * before a third of its lifetime has passed: a renew-before longer than the
 * CA's lifetime (short-lived certificates) must not order in a loop.
 */
export class AcmeManager implements CertificateSource {
  private readonly states = new Map<string, DomainState>();
  private readonly listeners = new ChangeListeners();
  private chain: Promise<void> = Promise.resolve();
  private poll: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly options: AcmeManagerOptions) {
    for (const domain of options.domains) this.states.set(domain, { domain, failures: 0 });
    options.fleet.onCertificate((domain) => {
      const state = this.states.get(domain);
      if (state) void this.adoptStored(state).catch((error) => this.logStoreError(domain, error));
    });
  }

  /** Starts the work in the background; the first certificates arrive when ordered. */
  start(): void {
    for (const state of this.states.values()) this.schedule(state, 0);
    this.poll = setInterval(
      () => {
        for (const state of this.states.values()) {
          void this.adoptStored(state).catch((error) => this.logStoreError(state.domain, error));
        }
      },
      this.options.storePollMs ?? 5 * 60_000,
    );
    this.poll.unref();
  }

  renewAt(certificate: LoadedCertificate): Date {
    const { notBefore, notAfter } = certificate.info;
    const asked = notAfter.getTime() - this.options.renewBeforeMs;
    const floor = notBefore.getTime() + Math.floor((notAfter.getTime() - notBefore.getTime()) / 3);
    return new Date(Math.max(asked, floor));
  }

  status(): AcmeDomainStatus[] {
    return [...this.states.values()].map((s) => ({
      domain: s.domain,
      serial: s.current?.info.serial ?? null,
      not_before: iso(s.current?.info.notBefore),
      not_after: iso(s.current?.info.notAfter),
      renew_at: s.current ? iso(this.renewAt(s.current)) : null,
      last_attempt: iso(s.lastAttempt),
      last_error: s.lastError ?? null,
      failures: s.failures,
      next_attempt: iso(s.nextAttempt),
    }));
  }

  contextFor(servername: string): SecureContext | undefined {
    let name = servername.toLowerCase();
    if (name.endsWith('.')) name = name.slice(0, -1);
    return this.states.get(name)?.current?.context;
  }

  defaultCertificate(): LoadedCertificate | undefined {
    for (const state of this.states.values()) if (state.current) return state.current;
    return undefined;
  }

  certificates(): ServedCertificate[] {
    return [...this.states.values()].flatMap((s) =>
      s.current ? [{ name: s.domain, source: 'acme' as const, certificate: s.current }] : [],
    );
  }

  onChange(listener: () => void): void {
    this.listeners.add(listener);
  }

  /** Stops scheduling; waits up to closeWaitMs for an attempt in progress. */
  async close(closeWaitMs = 2000): Promise<void> {
    this.closed = true;
    clearInterval(this.poll);
    for (const state of this.states.values()) clearTimeout(state.timer);
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<void>((resolve) => (timer = setTimeout(resolve, closeWaitMs)));
    await Promise.race([this.chain, waited]);
    clearTimeout(timer);
  }

  private schedule(state: DomainState, delayMs: number): void {
    if (this.closed) return;
    clearTimeout(state.timer);
    state.nextAttempt = new Date(Date.now() + delayMs);
    state.timer = setTimeout(
      () => {
        // One attempt at a time: the fleet lock is one for all domains.
        this.chain = this.chain.then(() => this.attempt(state));
      },
      Math.min(delayMs, MAX_TIMER_MS),
    );
    state.timer.unref();
  }

  private due(state: DomainState): boolean {
    return !state.current || this.renewAt(state.current).getTime() <= Date.now();
  }

  private async attempt(state: DomainState): Promise<void> {
    if (this.closed) return;
    const { fleet, logger } = this.options;
    try {
      await this.saveUnsaved(state);
      await this.adoptStored(state);
      if (!this.due(state)) return this.succeeded(state);
      const lock = await fleet.tryLock(`acme order for ${state.domain}`);
      if (!lock) {
        logger.info({ domain: state.domain }, 'another proxy is ordering; waiting for its result');
        const wait = this.options.lockWaitMs ?? 30_000;
        return this.schedule(state, backoffDelay({ firstMs: wait, maxMs: wait }, 1));
      }
      try {
        // Another proxy may have stored one while we waited for the lock.
        await this.adoptStored(state);
        if (!this.due(state)) return this.succeeded(state);
        await this.order(state);
      } finally {
        await lock.release();
      }
      this.succeeded(state);
    } catch (error) {
      if (this.closed) return;
      state.failures += 1;
      state.lastError = error instanceof Error ? error.message : String(error);
      const delay = backoffDelay(this.options.retry ?? ACME_RETRY, state.failures);
      logger.error(
        {
          domain: state.domain,
          err: state.lastError,
          failures: state.failures,
          retry_in_ms: delay,
          serving: state.current?.info.serial ?? null,
        },
        state.current
          ? 'ACME renewal failed; the current certificate stays in service'
          : 'ACME order failed; no certificate for this domain yet',
      );
      this.schedule(state, delay);
    }
  }

  private async order(state: DomainState): Promise<void> {
    const { issuer, fleet, metrics, logger } = this.options;
    state.lastAttempt = new Date();
    logger.info({ domain: state.domain, renewing: state.current !== undefined }, 'ACME order');
    let issued: LoadedCertificate;
    try {
      const pem = await issuer.issue(state.domain);
      issued = loadCertificate(pem);
    } catch (error) {
      metrics.countOrder('failure');
      throw error;
    }
    metrics.countOrder('success');
    logger.info(
      { domain: state.domain, serial: issued.info.serial, not_after: issued.info.notAfter },
      'ACME certificate obtained',
    );
    state.unsaved = issued.pem;
    try {
      await this.saveUnsaved(state);
    } finally {
      // Served even when the store failed (it is retried at the next attempt).
      this.install(state, issued);
    }
    await fleet.announceCertificate(state.domain).catch((error: unknown) => {
      logger.warn({ err: error, domain: state.domain }, 'could not tell the fleet; it polls');
    });
  }

  private async saveUnsaved(state: DomainState): Promise<void> {
    if (!state.unsaved) return;
    await this.options.store.saveCertificate(state.domain, state.unsaved);
    state.unsaved = undefined;
  }

  private succeeded(state: DomainState): void {
    state.failures = 0;
    state.lastError = undefined;
    const current = state.current!;
    this.schedule(state, Math.max(0, this.renewAt(current).getTime() - Date.now()));
  }

  /** Takes the stored certificate if it is newer than the one served. */
  private async adoptStored(state: DomainState): Promise<void> {
    const pem = await this.options.store.loadCertificate(state.domain);
    if (!pem) return;
    let stored: LoadedCertificate;
    try {
      stored = loadCertificate(pem);
    } catch (error) {
      if (!(error instanceof CertificateRejected)) throw error;
      this.options.logger.warn(
        { domain: state.domain, reason: error.reason, err: error.message },
        'stored certificate unusable; a new one will be ordered',
      );
      return;
    }
    if (!stored.info.names.includes(state.domain)) return;
    const current = state.current;
    if (current?.info.fingerprint256 === stored.info.fingerprint256) return;
    if (current && stored.info.notAfter <= current.info.notAfter) return;
    this.install(state, stored);
    this.options.logger.info(
      { domain: state.domain, serial: stored.info.serial, not_after: stored.info.notAfter },
      'certificate taken from the store',
    );
    // A fresh one (another proxy renewed it) ends any backoff of ours.
    if (!this.due(state)) this.succeeded(state);
  }

  private install(state: DomainState, certificate: LoadedCertificate): void {
    state.current = certificate;
    this.listeners.emit();
  }

  private logStoreError(domain: string, error: unknown): void {
    if (this.closed) return;
    this.options.logger.warn({ err: error, domain }, 'could not read the certificate store');
  }
}
