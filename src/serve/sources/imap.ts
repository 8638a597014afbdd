// Live source: one IMAP mailbox, followed with IDLE.
//
// The mailbox is opened read-only (EXAMINE) unless `markSeen` is set, so the bot never changes the
// user's mail. Messages are fetched by UID, in UID order, as raw bytes (BODY.PEEK[]), and delivered in
// batches together with the position "<UIDVALIDITY>:<last UID>"; the core stores both atomically, so
// after a crash the source resumes after the stored UID. When the server's UIDVALIDITY differs from the
// stored one, UIDs mean something else now: the mailbox is read again from the start (the store
// ignores messages it already has, by Message-ID).
//
// Connection problems never end run(): it reconnects with capped exponential backoff and jitter.
// Problems the user must fix (wrong password, missing mailbox, TLS) go to onError once per streak,
// with what to do; a message the server cannot hand out is reported through onError and skipped.
import { ImapFlow, type FetchMessageObject, type Logger as ImapLogger } from 'imapflow';
import { isIP } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import type { Logger } from 'pino';
import { log as rootLog } from '../../log.js';
import type { RawMessage } from '../../model.js';
import { sleep, type LiveSource, type SourceBatch, type SourceHealth, type SourceRunOptions } from '../types.js';

export const IMAP_PASSWORD_ENV = 'PATCHVET_IMAP_PASSWORD';

export interface ImapSourceOptions {
  /** imap:// or imaps://user@host[:port]/MAILBOX (user and mailbox percent-encoded; mailbox default INBOX). */
  url: string;
  /** Default: env PATCHVET_IMAP_PASSWORD (then a password in the url, which is discouraged). */
  password?: string;
  /** Open the mailbox read-write and set \Seen on delivered messages. Default false (EXAMINE: nothing changes). */
  markSeen?: boolean;
  /** Messages per delivered batch. Default 100. */
  batchSize?: number;
  /** Raw bytes per delivered batch (a single bigger message still makes its own batch). Default 32 MiB. */
  batchBytes?: number;
  /** Bigger messages are reported and skipped. Default 64 MiB. */
  maxMessageBytes?: number;
  /** Look for new mail at least this often even when IDLE says nothing (also restarts IDLE). Default 60 s. */
  pollMs?: number;
  /** Reconnect delays: initialMs doubled per failed attempt up to maxMs, with jitter. Default 1 s .. 5 min. */
  backoff?: { initialMs?: number; maxMs?: number };
  /** TCP+TLS connect budget. Default 30 s. */
  connectTimeoutMs?: number;
  /** Extra TLS options (ca, rejectUnauthorized, servername...). */
  tls?: ConnectionOptions;
  /**
   * imap:// only: insist on STARTTLS. Default true unless the host is loopback, so a password never
   * crosses a network in clear text by accident.
   */
  requireTls?: boolean;
  logger?: Logger;
}

export interface ImapUrl {
  secure: boolean;
  host: string;
  port: number;
  user: string;
  mailbox: string;
  /** Password given in the url itself ("" when none). */
  urlPassword: string;
  /** "imap://user@host[:port]/MAILBOX": the source key and the prefix of ref.source (no password, scheme-independent). */
  key: string;
}

/** Parse an imap:// or imaps:// url; throws an Error saying what a valid one looks like. */
export function parseImapUrl(url: string): ImapUrl {
  const hint = 'an IMAP source url looks like imaps://user@host/INBOX (or imap://user@host:143/MAILBOX)';
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`invalid IMAP url "${redactUrl(url)}": ${hint}`);
  }
  if (u.protocol !== 'imap:' && u.protocol !== 'imaps:') throw new Error(`invalid IMAP url "${redactUrl(url)}": ${hint}`);
  const secure = u.protocol === 'imaps:';
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  const user = decodeURIComponent(u.username);
  if (!host || !user) throw new Error(`invalid IMAP url "${redactUrl(url)}": user and host are required; ${hint}`);
  const defaultPort = secure ? 993 : 143;
  const port = u.port ? Number(u.port) : defaultPort;
  // IMAP urls (RFC 5092) may carry ";UIDVALIDITY=..." etc. after the mailbox: not supported, say so.
  const path = u.pathname.replace(/^\/+/, '');
  if (path.includes(';')) throw new Error(`invalid IMAP url "${redactUrl(url)}": only a mailbox name may follow the host; ${hint}`);
  const mailbox = decodeURIComponent(path) || 'INBOX';
  const portPart = port === 143 || port === 993 ? '' : `:${port}`;
  const hostPart = host.includes(':') ? `[${host}]` : host;
  const key = `imap://${encodeURIComponent(user)}@${hostPart}${portPart}/${encodeURIComponent(mailbox).replace(/%2F/gi, '/')}`;
  return { secure, host, port, user, mailbox, urlPassword: decodeURIComponent(u.password), key };
}

/** The url without its password, for messages. */
function redactUrl(url: string): string {
  return url.replace(/^([a-z]+:\/\/[^:@/]*):[^@/]*@/i, '$1:[redacted]@');
}

export interface ImapPosition {
  uidValidity: string;
  uid: number;
}

/** "<UIDVALIDITY>:<UID>" -> parts; null for null or a malformed value. */
export function parseImapPosition(pos: string | null): ImapPosition | null {
  if (pos === null) return null;
  const m = /^(\d+):(\d+)$/.exec(pos.trim());
  if (!m) return null;
  return { uidValidity: BigInt(m[1]).toString(), uid: Number(m[2]) };
}

export function formatImapPosition(p: ImapPosition): string {
  return `${p.uidValidity}:${p.uid}`;
}

/** Delay before reconnect attempt `attempt` (0-based): initial*2^attempt capped at max, then "equal jitter" (half fixed, half random). */
export function backoffDelay(attempt: number, initialMs: number, maxMs: number, random: () => number = Math.random): number {
  const base = Math.min(maxMs, initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(base / 2 + random() * (base / 2));
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/i;

interface ImapError extends Error {
  code?: string;
  authenticationFailed?: boolean;
  responseText?: string;
  responseStatus?: string;
  serverResponseCode?: string;
  response?: unknown;
}


/** A message that made the server drop the connection this many times when fetched on its own is skipped. */
const POISON_STRIKES = 3;

/** What run() carries across sessions (reconnects). */
interface RunState {
  pos: ImapPosition | null;
  /** Failed connection attempts in a row (backoff exponent). */
  attempt: number;
  /** The problem last reported through onError (each is reported once per streak). */
  reported: string | null;
  /**
   * Set when the connection was lost while fetching messages up to `upto`: some servers (Dovecot)
   * answer a message they cannot read with BYE. Until the position passes `upto`, messages are
   * fetched one at a time, and one that kills the connection POISON_STRIKES times is skipped, so a
   * single broken message cannot stop the mailbox forever.
   */
  trouble: { upto: number; strikes: Map<number, number>; reason: string } | null;
}

type RunOpts = Parameters<LiveSource['run']>[0];

/** Thrown inside a session when the connection went away (reconnect). */
class ConnectionLost extends Error {}

/** A session-level problem the user has to fix: reported through onError (once per streak). */
class ConfigProblem extends Error {}

export class ImapSource implements LiveSource {
  readonly key: string;
  private readonly url: ImapUrl;
  private readonly password: string;
  private readonly markSeen: boolean;
  private readonly batchSize: number;
  private readonly batchBytes: number;
  private readonly maxMessageBytes: number;
  private readonly pollMs: number;
  private readonly backoffInitial: number;
  private readonly backoffMax: number;
  private readonly connectTimeoutMs: number;
  private readonly tls: ConnectionOptions | undefined;
  private readonly requireTls: boolean;
  private readonly log: Logger;

  private connected = false;
  private lastSyncAt: number | null = null;
  private problem: string | null = null;

  constructor(opts: ImapSourceOptions) {
    this.url = parseImapUrl(opts.url);
    this.key = this.url.key;
    const password = opts.password ?? process.env[IMAP_PASSWORD_ENV] ?? this.url.urlPassword;
    if (!password) {
      throw new Error(`no IMAP password for ${this.who()}: set ${IMAP_PASSWORD_ENV}`);
    }
    this.password = password;
    this.markSeen = opts.markSeen ?? false;
    this.batchSize = Math.max(1, opts.batchSize ?? 100);
    this.batchBytes = Math.max(1, opts.batchBytes ?? 32 * 1024 * 1024);
    this.maxMessageBytes = opts.maxMessageBytes ?? 64 * 1024 * 1024;
    this.pollMs = Math.max(100, opts.pollMs ?? 60_000);
    this.backoffInitial = Math.max(1, opts.backoff?.initialMs ?? 1000);
    this.backoffMax = Math.max(this.backoffInitial, opts.backoff?.maxMs ?? 300_000);
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 30_000;
    this.tls = opts.tls;
    this.requireTls = opts.requireTls ?? !LOOPBACK.test(this.url.host);
    this.log = (opts.logger ?? rootLog).child({ source: this.key });
    if (this.url.urlPassword && opts.password === undefined && !process.env[IMAP_PASSWORD_ENV]) {
      this.log.warn(`the IMAP url carries a password: prefer ${IMAP_PASSWORD_ENV} (config files get copied around)`);
    }
  }

  /** "user@host" for messages. */
  private who(): string {
    return `${this.url.user}@${this.url.host}`;
  }

  health(): SourceHealth {
    const lagSeconds = this.lastSyncAt === null ? undefined : Math.max(0, (Date.now() - this.lastSyncAt) / 1000);
    if (this.connected) return { ok: true, lagSeconds, detail: `connected to ${this.who()}, mailbox ${this.url.mailbox}` };
    return { ok: false, lagSeconds, detail: this.problem ?? 'not connected' };
  }

  async run(opts: SourceRunOptions): Promise<void> {
    const { signal } = opts;
    let pos = parseImapPosition(opts.from);
    if (opts.from !== null && !pos) {
      this.log.warn({ position: opts.from }, 'stored IMAP position is not "<UIDVALIDITY>:<UID>": reading the mailbox from the start');
    }
    const state: RunState = { pos, attempt: 0, reported: null, trouble: null };
    while (!signal.aborted) {
      try {
        await this.session(state, opts);
        // a session only ends without throwing when we were aborted
      } catch (err) {
        this.connected = false;
        if (signal.aborted) break;
        const message = this.describe(err);
        this.problem = message;
        if (err instanceof ConfigProblem || isConfigError(err)) {
          if (state.reported !== message) {
            state.reported = message;
            opts.onError({ source: this.key, message });
          }
          this.log.error(message);
        } else {
          this.log.warn(message);
        }
        const delay = backoffDelay(state.attempt++, this.backoffInitial, this.backoffMax);
        this.log.info({ delayMs: delay }, 'reconnecting to IMAP server after a pause');
        await sleep(delay, signal);
      }
    }
    this.connected = false;
  }

  /** Turn any session failure into one sentence that says what happened and, where we know, what to do. */
  private describe(err: unknown): string {
    const e = err as ImapError;
    const server = `${this.url.host}:${this.url.port}`;
    if (err instanceof ConfigProblem || err instanceof ConnectionLost) return e.message;
    if (e?.authenticationFailed && isTemporary(e)) {
      return `IMAP server ${server} could not check the login of ${this.who()} right now (server said: ${e.responseText ?? e.message}); retrying`;
    }
    if (e?.authenticationFailed) {
      const said = e.responseText ? ` (server said: ${e.responseText})` : '';
      return `IMAP login failed for ${this.who()}: check ${IMAP_PASSWORD_ENV}${said}`;
    }
    switch (e?.code) {
      case 'ECONNREFUSED':
        return `cannot connect to IMAP server ${server} (connection refused): is it running, and is the port in the url right?`;
      case 'ENOTFOUND':
      case 'EAI_AGAIN':
        return `cannot resolve IMAP host ${this.url.host}: check the host in the url`;
      case 'ETIMEDOUT':
      case 'ETIMEOUT':
      case 'CONNECT_TIMEOUT':
      case 'GREETING_TIMEOUT':
        return `IMAP server ${server} did not answer in time`;
      case 'ECONNRESET':
      case 'EPIPE':
      case 'NoConnection':
      case 'ClosedAfterConnectText':
      case 'ClosedAfterConnectTLS':
        return `IMAP connection to ${server} was closed (${e.code})`;
    }
    if (/does not support STARTTLS/i.test(e?.message ?? '')) {
      return `IMAP server ${server} does not offer STARTTLS, and the password must not cross the network in clear text: use imaps:// (usually port 993) if the server has it, or allow plain text for a trusted network (requireTls: false)`;
    }
    if (/certificate|self.signed|SSL|TLS/i.test(`${e?.code ?? ''} ${e?.message ?? ''}`)) {
      return `TLS with IMAP server ${server} failed (${e?.message}): check the server's certificate, or the url's scheme and port (imaps:// is usually port 993, imap:// with STARTTLS 143)`;
    }
    const text = e?.responseText ? `${e.message}: ${e.responseText}` : (e?.message ?? String(err));
    return `IMAP error with ${this.who()}: ${text}`;
  }

  private imapLogger(): ImapLogger | false {
    const l = this.log;
    if (!l.isLevelEnabled('debug')) return false;
    const secret = this.password;
    const b64 = Buffer.from(secret).toString('base64');
    // imapflow masks credentials itself; scrubbing again costs little at debug level and protects
    // against a future change there.
    const scrub = (obj: unknown): unknown => {
      let s: string;
      try {
        s = JSON.stringify(obj, (_k, v) =>
          typeof v === 'bigint' ? v.toString() : v instanceof Error ? { message: v.message, code: (v as ImapError).code } : v,
        );
      } catch {
        return { msg: 'imapflow log entry (not serialisable)' };
      }
      if (s === undefined) return {};
      if (secret.length >= 3) s = s.split(secret).join('[redacted]').split(b64).join('[redacted]');
      return JSON.parse(s);
    };
    const fwd = (level: 'trace' | 'debug') => (obj: unknown) => {
      if (l.isLevelEnabled(level)) l[level]({ imapflow: scrub(obj) });
    };
    // imapflow reports every dropped connection as an error; we log what matters ourselves.
    return { debug: fwd('trace'), info: fwd('debug'), warn: fwd('debug'), error: fwd('debug') };
  }

  /** One connection: connect, open, sync, IDLE until news, repeat. Throws when the connection is lost. */
  private async session(state: RunState, opts: RunOpts): Promise<void> {
    const { signal } = opts;
    const client = new ImapFlow({
      host: this.url.host,
      port: this.url.port,
      secure: this.url.secure,
      doSTARTTLS: this.url.secure ? undefined : this.requireTls ? true : undefined,
      // SNI takes host names only
      servername: isIP(this.url.host) || LOOPBACK.test(this.url.host) ? undefined : this.url.host,
      auth: { user: this.url.user, pass: this.password },
      tls: this.tls,
      logger: this.imapLogger(),
      // we start IDLE ourselves right after each sync, so new mail is announced at once
      disableAutoIdle: true,
      connectionTimeout: this.connectTimeoutMs,
      clientInfo: { name: 'patchvet' },
    });

    let closed = false;
    let news = false;
    let wake: (() => void) | null = null;
    const poke = () => {
      news = true;
      const w = wake;
      wake = null;
      w?.();
    };
    client.on('error', (err: ImapError) => {
      this.log.debug({ code: err?.code, err: err?.message }, 'IMAP connection error');
      closed = true;
      poke();
    });
    client.on('close', () => {
      closed = true;
      poke();
    });
    client.on('exists', () => poke());
    let closeTimer: NodeJS.Timeout | null = null;
    const onAbort = () => {
      poke();
      // LOGOUT is polite and quick when idle; if a command is in flight it may queue behind it,
      // so the socket is closed after a short grace either way.
      client.logout().catch(() => undefined);
      closeTimer = setTimeout(() => client.close(), 2000);
      closeTimer.unref?.();
    };
    signal.addEventListener('abort', onAbort, { once: true });

    try {
      await client.connect();
      if (signal.aborted) return;
      let { uidValidity, exists } = await this.open(client, state, () => closed);
      this.connected = true;
      this.problem = null;
      state.reported = null;
      this.log.info({ mailbox: this.url.mailbox, uidValidity, exists, readOnly: !this.markSeen }, 'IMAP mailbox open');

      let lastSuccessfulSession = false;
      let polled = false;
      for (;;) {
        if (signal.aborted) return;
        if (closed) throw new ConnectionLost(`IMAP connection to ${this.url.host}:${this.url.port} was lost`);
        news = false;
        if (polled) {
          // A session keeps its view of a mailbox that another session deleted and created again
          // (Dovecot tells an IDLE session nothing, and STATUS answers from the same stale view): it
          // would never see new mail. Opening the mailbox again on each poll gets the current one.
          ({ uidValidity } = await this.open(client, state, () => closed));
          polled = false;
        }
        await this.sync(client, uidValidity, state, opts);
        this.lastSyncAt = Date.now();
        if (!lastSuccessfulSession) {
          // the connection is good: the next failure starts the backoff from the beginning
          state.attempt = 0;
          lastSuccessfulSession = true;
        }
        if (signal.aborted) return;
        if (closed) continue;
        if (news) continue;
        // IDLE until the server reports something, the connection goes, we are aborted, or pollMs
        client.idle().catch((err: ImapError) => this.log.debug({ err: err?.message }, 'IDLE ended with an error'));
        await new Promise<void>((resolve) => {
          const t = setTimeout(() => {
            polled = true;
            done();
          }, this.pollMs);
          function done() {
            clearTimeout(t);
            resolve();
          }
          wake = done;
          if (news || closed || signal.aborted) done();
        });
        wake = null;
      }
    } finally {
      this.connected = false;
      signal.removeEventListener('abort', onAbort);
      if (!signal.aborted) {
        if (client.usable) {
          await Promise.race([client.logout().catch(() => undefined), new Promise((r) => setTimeout(r, 2000).unref?.())]);
        }
        client.close();
      } else {
        // onAbort started the logout; make sure the socket goes, promptly
        await Promise.race([
          new Promise<void>((r) => (client.usable ? client.once('close', () => r()) : r())),
          new Promise((r) => setTimeout(r, 2000).unref?.()),
        ]);
        if (closeTimer) clearTimeout(closeTimer);
        client.close();
      }
    }
  }

  /**
   * SELECT/EXAMINE the mailbox; when its UIDVALIDITY is not the one of state.pos, warn and read it
   * from the start. A mailbox the server will not open is a ConfigProblem (reported to the user).
   */
  private async open(client: ImapFlow, state: RunState, closed: () => boolean): Promise<{ uidValidity: string; exists: number }> {
    let mb;
    try {
      mb = await client.mailboxOpen(this.url.mailbox, { readOnly: !this.markSeen });
    } catch (err) {
      if (!client.usable || closed()) throw err;
      const e = err as ImapError;
      const said = e.responseText ?? e.message;
      if (/NONEXISTENT|doesn't exist|does not exist|no such|not found|unknown mailbox/i.test(`${said} ${JSON.stringify(e.response ?? '')}`)) {
        throw new ConfigProblem(
          `IMAP mailbox "${this.url.mailbox}" does not exist for ${this.who()}: check the mailbox in the url (server said: ${said})`,
        );
      }
      throw new ConfigProblem(`cannot open IMAP mailbox "${this.url.mailbox}" for ${this.who()}: ${said}`);
    }
    const uidValidity = mb.uidValidity.toString();
    if (state.pos && state.pos.uidValidity !== uidValidity) {
      this.log.warn(
        { stored: state.pos.uidValidity, server: uidValidity },
        'IMAP UIDVALIDITY changed (mailbox recreated or restored): reading the whole mailbox again; messages already stored are ignored by Message-ID',
      );
      state.pos = null;
      state.trouble = null;
    }
    return { uidValidity, exists: mb.exists };
  }

  /** Fetch and deliver everything after state.pos, in batches. */
  private async sync(client: ImapFlow, uidValidity: string, state: RunState, opts: RunOpts): Promise<void> {
    const { signal } = opts;
    const mailbox = client.mailbox;
    if (!mailbox || mailbox.exists === 0) return;
    const last = state.pos?.uid ?? 0;
    // "n:*" always includes the highest UID even when it is below n (RFC 3501 6.4.8): filter.
    const listed = await client.fetchAll(`${last + 1}:*`, { uid: true, size: true }, { uid: true });
    const todo = listed
      .filter((m) => m.uid > last)
      .sort((a, b) => a.uid - b.uid)
      .map((m) => ({ uid: m.uid, size: m.size ?? 0 }));
    if (todo.length === 0) return;
    this.log.debug({ count: todo.length, after: last }, 'new IMAP messages');

    let i = 0;
    while (i < todo.length) {
      if (signal.aborted) return;
      const chunk: Array<{ uid: number; size: number }> = [];
      let bytes = 0;
      while (i < todo.length && chunk.length < this.batchSize) {
        const next = todo[i];
        if (chunk.length > 0 && bytes + next.size > this.batchBytes) break;
        chunk.push(next);
        bytes += next.size;
        i++;
      }
      const wanted: number[] = [];
      for (const m of chunk) {
        if (m.size > this.maxMessageBytes) {
          opts.onError({
            source: this.ref(uidValidity, m.uid),
            message: `message of ${m.size} bytes is over the ${this.maxMessageBytes}-byte limit: skipped`,
          });
        } else {
          wanted.push(m.uid);
        }
      }
      const careful = state.trouble !== null && chunk[0].uid <= state.trouble.upto;
      const got = careful
        ? await this.fetchOneByOne(client, wanted, uidValidity, state, opts)
        : await this.fetchBatch(client, wanted, uidValidity, state, opts);
      const messages: RawMessage[] = [];
      for (const uid of wanted) {
        const raw = got.get(uid);
        if (!raw) continue;
        const source = this.ref(uidValidity, uid);
        messages.push({ raw, ref: { source, file: this.key, offset: 0, length: raw.length } });
      }
      const position: ImapPosition = { uidValidity, uid: chunk[chunk.length - 1].uid };
      // Deliver even an empty batch (everything skipped): the position must move past bad messages.
      await opts.deliver({ messages, position: formatImapPosition(position) });
      state.pos = position;
      if (state.trouble && position.uid >= state.trouble.upto) state.trouble = null;
      this.lastSyncAt = Date.now();
      if (this.markSeen && messages.length > 0 && !signal.aborted) {
        try {
          await client.messageFlagsAdd(
            messages.map((m) => Number(m.ref.source.slice(m.ref.source.lastIndexOf(':') + 1))),
            ['\\Seen'],
            { uid: true, silent: true },
          );
        } catch (err) {
          if (!client.usable) throw err;
          this.log.warn({ err: (err as Error).message }, 'could not mark delivered IMAP messages \\Seen');
        }
      }
    }
  }

  /** Raw sources of `uids` in one FETCH; what it leaves out is asked for one by one. A lost connection throws. */
  private async fetchBatch(
    client: ImapFlow,
    uids: number[],
    uidValidity: string,
    state: RunState,
    opts: RunOpts,
  ): Promise<Map<number, Buffer>> {
    const got = new Map<number, Buffer>();
    if (uids.length === 0) return got;
    try {
      for await (const m of client.fetch(uids.join(','), { uid: true, source: true }, { uid: true })) {
        if (m.source && uids.includes(m.uid)) got.set(m.uid, m.source);
      }
    } catch (err) {
      if (!client.usable) {
        state.trouble = { upto: uids[uids.length - 1], strikes: state.trouble?.strikes ?? new Map(), reason: reasonOf(err) };
        throw err;
      }
      this.log.debug({ err: reasonOf(err) }, 'batch FETCH failed: fetching one by one');
    }
    // Left out of the batch: refused by the server, expunged in the meantime, or silently dropped.
    // Asking for each on its own tells these apart, and skips only the bad one.
    const rest = uids.filter((u) => !got.has(u));
    if (rest.length > 0) for (const [u, b] of await this.fetchOneByOne(client, rest, uidValidity, state, opts)) got.set(u, b);
    return got;
  }

  /** Raw sources of `uids`, one FETCH each: a refused message is reported and skipped; see RunState.trouble. */
  private async fetchOneByOne(
    client: ImapFlow,
    uids: number[],
    uidValidity: string,
    state: RunState,
    opts: RunOpts,
  ): Promise<Map<number, Buffer>> {
    const got = new Map<number, Buffer>();
    for (const uid of uids) {
      const source = this.ref(uidValidity, uid);
      const strikes = state.trouble?.strikes.get(uid) ?? 0;
      if (state.trouble && strikes >= POISON_STRIKES) {
        opts.onError({
          source,
          message: `the IMAP server closed the connection each time this message was fetched (${state.trouble.reason}): skipped`,
        });
        continue;
      }
      try {
        const m = await client.fetchOne(String(uid), { uid: true, source: true }, { uid: true });
        if (m && m.source) got.set(uid, m.source);
        else if (m) opts.onError({ source, message: 'the IMAP server returned the message without its content: skipped' });
        else this.log.info({ uid }, 'IMAP message disappeared before it could be fetched (expunged)');
      } catch (err) {
        if (!client.usable) {
          const t = state.trouble ?? { upto: uids[uids.length - 1], strikes: new Map<number, number>(), reason: '' };
          t.upto = Math.max(t.upto, uids[uids.length - 1]);
          t.strikes.set(uid, strikes + 1);
          t.reason = reasonOf(err);
          state.trouble = t;
          throw err;
        }
        opts.onError({ source, message: `the IMAP server could not hand out this message (${reasonOf(err)}): skipped` });
      }
    }
    return got;
  }

  private ref(uidValidity: string, uid: number): string {
    return `${this.key}#${uidValidity}:${uid}`;
  }
}

/** The server's words about a failed command (or the BYE that ended the connection). */
function reasonOf(err: unknown): string {
  const e = err as ImapError & { reason?: string };
  return e?.responseText ?? e?.reason ?? e?.message ?? String(err);
}

/** NO [UNAVAILABLE] (RFC 5530): the server could not check the login now; the password may be fine. */
function isTemporary(e: ImapError): boolean {
  return e.serverResponseCode === 'UNAVAILABLE' || /\[UNAVAILABLE\]/i.test(String(e.response ?? ''));
}

/** Errors that retrying will not fix: the user has to change the config or the server. */
function isConfigError(err: unknown): boolean {
  const e = err as ImapError;
  if (e?.authenticationFailed) return !isTemporary(e);
  if (e?.code === 'ENOTFOUND') return true;
  return /certificate|self.signed|wrong version number|STARTTLS/i.test(`${e?.code ?? ''} ${e?.message ?? ''}`);
}
