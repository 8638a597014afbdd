// Delivery of queued replies (the store's outbox): claim due items under a lease, then
//   channel "preview" (reply: off)  -> write <Message-ID>.eml into the outbox dir, never send;
//   channel "outbox" (mode outbox)  -> the same file, but after the list's embargo / rate limit
//                                      (an external sender picks the files up);
//   channel "smtp"   (mode smtp)    -> send the stored eml as it is, with nodemailer.
// Files are written atomically (temporary file, fsync, rename, fsync of the directory), so a
// reader never sees half a message and a crash before markSent only rewrites the same file.
//
// SMTP failures: 4xx and network errors are retried with exponential backoff forever (a mail
// server being down must not lose a reply); 5xx are retried up to maxPermanentFailures times in
// all, then the reply is marked failed for good (and logged).
//
// The one window where a reply might go out twice: the server accepted it (250) and the process
// died before markSent. The item's lease then expires and it comes back marked possiblySent.
// Before sending it again we look for its Message-ID in the store: the list we follow delivers
// our own reply back to us, and if it is there the reply went out: markSent. If it is not (yet),
// we wait confirmWait once for it to show up, then send again with the SAME Message-ID: list
// servers (Mailman's duplicate filter), archives (public-inbox) and mail clients drop a second
// copy of a Message-ID they have seen. Each re-send is logged as a warning.
import { randomBytes } from 'node:crypto';
import { mkdirSync, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import type { Logger } from 'pino';
import type { OutboxItem, Store } from '../store/store.js';
import type { EmailDeliveryConfig, ListConfig } from './config.js';
import { classifySmtpError, holdUntil, matchList, retryDelay } from './policy.js';

// ---------------------------------------------------------------- files

/** "<patchvet.abc@example.org>" -> "patchvet.abc@example.org.eml" (only safe characters). */
export function outboxFileName(messageId: string): string {
  const bare = messageId.trim().replace(/^<|>$/g, '');
  const safe = bare.replace(/[^A-Za-z0-9._@+=-]/g, '_').replace(/^\.+/, '_').slice(0, 200);
  return `${safe || 'message'}.eml`;
}

/** Write `eml` to dir/<name> atomically and durably; returns the path. */
export async function writeFileAtomic(dir: string, name: string, data: Buffer): Promise<string> {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, name);
  // A dot-file: pickup scripts that read *.eml never see the temporary one.
  const tmp = join(dir, `.${name}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`);
  const fh = await fsp.open(tmp, 'wx', 0o640);
  try {
    await fh.writeFile(data);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await fsp.rename(tmp, path);
  } catch (e) {
    await fsp.rm(tmp, { force: true });
    throw e;
  }
  // The rename itself must survive a power cut before we say "sent".
  try {
    const d = await fsp.open(dir, 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  } catch {
    // Some filesystems refuse fsync on a directory; the rename is still atomic.
  }
  return path;
}

// ---------------------------------------------------------------- SMTP

export interface SendResult {
  /** The server's final reply, e.g. "250 2.0.0 Ok: queued as 4Zx". */
  response: string;
  rejected?: string[];
}

/** Something that hands a finished message to a mail server. */
export interface SendTransport {
  send(msg: { from: string; to: string[]; raw: Buffer }): Promise<SendResult>;
  close(): void;
}

/** LF -> CRLF, bytes otherwise untouched (SMTP wants CRLF lines). */
export function toCrlf(eml: Buffer): Buffer {
  return Buffer.from(eml.toString('latin1').replace(/\r?\n/g, '\r\n'), 'latin1');
}

/** nodemailer over smtp://[user@]host[:port] (STARTTLS when offered) or smtps:// (TLS from the start). */
export function smtpTransport(cfg: Pick<EmailDeliveryConfig, 'smtp' | 'smtpPassword'>): SendTransport {
  if (!cfg.smtp) throw new Error('delivery.email.smtp is not set');
  const u = new URL(cfg.smtp);
  const secure = u.protocol === 'smtps:';
  const user = u.username ? decodeURIComponent(u.username) : undefined;
  const transport = nodemailer.createTransport({
    host: u.hostname.replace(/^\[|\]$/g, ''),
    port: u.port ? Number(u.port) : secure ? 465 : 25,
    secure,
    auth: user ? { user, pass: cfg.smtpPassword ?? '' } : undefined,
    connectionTimeout: 30_000,
    greetingTimeout: 30_000,
    socketTimeout: 60_000,
    // Never log message content or credentials through nodemailer's own logger.
    logger: false,
  });
  return {
    async send(msg) {
      const info = await transport.sendMail({ envelope: { from: msg.from, to: msg.to }, raw: toCrlf(msg.raw) });
      return { response: String(info.response ?? ''), rejected: (info.rejected ?? []).map(String) };
    },
    close() {
      transport.close();
    },
  };
}

// ---------------------------------------------------------------- the delivery loop

export type DeliveryEvent = 'written' | 'sent' | 'confirmed' | 'held' | 'retry' | 'failed' | 'resent';

export interface DeliveryOptions {
  store: Store;
  email: EmailDeliveryConfig;
  lists: readonly ListConfig[];
  /** Lease owner name (host:pid:random): unique per process. */
  worker: string;
  log: Logger;
  /** Needed for channel "smtp"; created from email.smtp when absent. */
  transport?: SendTransport;
  now?: () => Date;
  onEvent?: (e: DeliveryEvent, item: OutboxItem) => void;
}

export interface RoundResult {
  claimed: number;
  done: number;
}

const CONFIRM_MARK = 'possibly sent before a crash: waiting for it on the list';
const HOLD_MARK = 'held: ';
const RATE_KEY = (list: string) => `patchvet:sent-times:${list}`;
// Failure counts per reply (the store's `attempts` also counts claims that only held the reply).
const PERM_KEY = (key: string) => `patchvet:permanent-failures:${key}`;
const TEMP_KEY = (key: string) => `patchvet:temporary-failures:${key}`;

export class Delivery {
  private transport: SendTransport | null;
  private readonly now: () => Date;

  constructor(private readonly o: DeliveryOptions) {
    this.transport = o.transport ?? null;
    this.now = o.now ?? (() => new Date());
  }

  /** One round: claim up to `limit` due items and handle each. */
  async round(limit = 16): Promise<RoundResult> {
    const items = await this.o.store.claimReplies(limit, this.o.email.leaseSeconds, this.o.worker);
    let done = 0;
    for (const item of items) {
      try {
        if (await this.handle(item)) done++;
      } catch (e) {
        // Our own bug or the store failing: give the item back for a later attempt.
        this.o.log.error({ err: e, reply: item.messageId, key: item.key }, 'delivery: unexpected error');
        const retryAt = new Date(this.now().getTime() + this.o.email.retry.initialDelaySeconds * 1000);
        await this.o.store.markFailed(item.key, `internal error: ${(e as Error).message}`, retryAt, this.o.worker).catch(() => false);
      }
    }
    return { claimed: items.length, done };
  }

  /** Keep running rounds until nothing is due (items held for later stay queued). */
  async drain(maxRounds = 1000): Promise<void> {
    for (let i = 0; i < maxRounds; i++) {
      const r = await this.round();
      if (r.claimed === 0) return;
    }
  }

  close(): void {
    this.transport?.close();
    this.transport = null;
  }

  private event(e: DeliveryEvent, item: OutboxItem): void {
    this.o.onEvent?.(e, item);
  }

  private async handle(item: OutboxItem): Promise<boolean> {
    const { store, log } = this.o;
    if (item.channel === 'preview') return this.writeFile(item);

    const patch = item.inReplyTo ? await store.getMessage(item.inReplyTo) : null;
    const list = patch ? matchList(patch, this.o.lists) : null;
    const hold = holdUntil(patch, list, {
      now: this.now(),
      queuedAt: item.createdAt,
      sentAt: list?.rateLimit ? await this.sentTimes(list.address) : [],
    });
    if (hold) {
      await store.markFailed(item.key, `${HOLD_MARK}${hold.reason} (until ${hold.until.toISOString()})`, hold.until, this.o.worker);
      log.info({ reply: item.messageId, until: hold.until.toISOString(), reason: hold.reason }, 'delivery: reply held');
      this.event('held', item);
      return false;
    }

    if (item.channel === 'outbox') {
      const ok = await this.writeFile(item);
      if (ok && list) await this.noteSent(list.address);
      return ok;
    }
    if (item.channel !== 'smtp') {
      log.error({ reply: item.messageId, channel: item.channel }, 'delivery: unknown channel; leaving the reply queued');
      await store.markFailed(item.key, `unknown channel ${item.channel}`, new Date(this.now().getTime() + 3600_000), this.o.worker);
      return false;
    }

    if (item.possiblySent) {
      if (await store.hasMessage(item.messageId)) {
        await store.markSent(item.key, { response: 'seen on the list: sent before an interruption' });
        log.info({ reply: item.messageId }, 'delivery: reply found on the list; not sending it again');
        this.event('confirmed', item);
        return true;
      }
      if (!item.lastError?.startsWith(CONFIRM_MARK) && this.o.email.confirmWaitSeconds > 0) {
        const at = new Date(this.now().getTime() + this.o.email.confirmWaitSeconds * 1000);
        await store.markFailed(item.key, `${CONFIRM_MARK} until ${at.toISOString()}`, at, this.o.worker);
        log.warn({ reply: item.messageId }, 'delivery: reply may have been sent before an interruption; waiting for it on the list');
        this.event('held', item);
        return false;
      }
      log.warn(
        { reply: item.messageId, attempts: item.attempts },
        'delivery: re-sending a reply that may already have gone out (same Message-ID: the list and archives drop a second copy)',
      );
      this.event('resent', item);
    }
    return this.sendSmtp(item, list);
  }

  private async writeFile(item: OutboxItem): Promise<boolean> {
    const path = await writeFileAtomic(this.o.email.outbox, outboxFileName(item.messageId), item.eml);
    await this.o.store.markSent(item.key, { response: `written to ${path}`, path });
    this.o.log.info({ reply: item.messageId, path }, 'delivery: reply written to the outbox');
    this.event('written', item);
    return true;
  }

  private async sendSmtp(item: OutboxItem, list: ListConfig | null): Promise<boolean> {
    const { store, log, email } = this.o;
    const rcpts = [...item.to, ...item.cc];
    if (!rcpts.length) {
      await store.markFailed(item.key, 'no valid recipient', null, this.o.worker);
      log.error({ reply: item.messageId }, 'delivery: reply has no valid recipient; given up');
      this.event('failed', item);
      return false;
    }
    this.transport ??= smtpTransport(email);
    let res: SendResult;
    try {
      res = await this.transport.send({ from: email.fromAddress, to: rcpts, raw: item.eml });
    } catch (e) {
      const err = e as Error & { responseCode?: number; code?: string; response?: string };
      const kind = classifySmtpError(err);
      const text = (err.response ?? err.message ?? String(e)).replace(/\s+/g, ' ').slice(0, 500);
      if (kind === 'permanent') {
        const n = ((await store.cacheGet<number>(PERM_KEY(item.key))) ?? 0) + 1;
        await store.cachePut(PERM_KEY(item.key), n, 30 * 86400);
        if (n >= email.retry.maxPermanentFailures) {
          await store.markFailed(item.key, `permanent failure ${n}x: ${text}`, null, this.o.worker);
          log.error({ reply: item.messageId, code: err.responseCode, error: text }, 'delivery: permanent SMTP failure; reply given up');
          this.event('failed', item);
          return false;
        }
        const at = new Date(this.now().getTime() + retryDelay(n, email.retry) * 1000);
        await store.markFailed(item.key, `permanent failure ${n}x: ${text}`, at, this.o.worker);
        log.warn({ reply: item.messageId, code: err.responseCode, error: text, retryAt: at }, 'delivery: SMTP refused the reply; retrying');
      } else {
        const failures = ((await store.cacheGet<number>(TEMP_KEY(item.key))) ?? 0) + 1;
        await store.cachePut(TEMP_KEY(item.key), failures, 30 * 86400);
        const at = new Date(this.now().getTime() + retryDelay(failures, email.retry) * 1000);
        await store.markFailed(item.key, `temporary failure: ${err.code ?? ''} ${text}`.trim(), at, this.o.worker);
        log.warn({ reply: item.messageId, code: err.responseCode ?? err.code, error: text, retryAt: at }, 'delivery: temporary failure; retrying');
      }
      this.event('retry', item);
      return false;
    }
    await store.markSent(item.key, { response: res.response, rejected: res.rejected ?? [] });
    if (list) await this.noteSent(list.address);
    if (res.rejected?.length) log.warn({ reply: item.messageId, rejected: res.rejected }, 'delivery: some recipients were refused');
    log.info({ reply: item.messageId, response: res.response }, 'delivery: reply sent');
    this.event('sent', item);
    return true;
  }

  private async sentTimes(list: string): Promise<number[]> {
    return (await this.o.store.cacheGet<number[]>(RATE_KEY(list))) ?? [];
  }

  private async noteSent(list: string): Promise<void> {
    const l = this.o.lists.find((x) => x.address === list);
    if (!l?.rateLimit) return;
    const now = this.now().getTime();
    const times = (await this.sentTimes(list)).filter((t) => t > now - 3600_000);
    times.push(now);
    await this.o.store.cachePut(RATE_KEY(list), times, 7200);
  }
}
