// Live source: an LMTP server (RFC 2033), so the list's MTA can deliver straight to the bot
// (Postfix: `transport_maps` -> lmtp:inet:127.0.0.1:2424; Exim: an lmtp transport).
//
// Durability is the point of LMTP here: the 250 for a message goes out only after deliver() resolved,
// i.e. after the core stored it. If deliver throws, every recipient gets 451 (temporary failure), so
// the MTA keeps the message in its queue and retries: nothing is lost, and a message that was stored
// but whose 250 never arrived comes again and is ignored by the store (by Message-ID).
// There is no position (push source): batches carry position null.
import type { AddressInfo } from 'node:net';
import { SMTPServer, type SMTPServerDataStream, type SMTPServerSession, type SMTPServerOptions } from 'smtp-server';
import type { Logger } from 'pino';
import { log as rootLog } from '../../log.js';
import type { RawMessage } from '../../model.js';
import { sleep, type LiveSource, type SourceBatch, type SourceHealth, type SourceRunOptions } from '../types.js';

export interface LmtpSourceOptions {
  /** "host:port" ("[::1]:2424" for IPv6). Default 127.0.0.1:2424. */
  listen?: string;
  /** Recipient addresses accepted (case-insensitive); others get 550. Empty or absent: any. */
  addresses?: string[];
  /** Bigger messages get 552 (and are never buffered past the limit). Default 64 MiB. */
  maxMessageBytes?: number;
  /** Host name in the greeting and the LHLO answer. Default: the machine's name (smtp-server's default). */
  hostname?: string;
  /** Text after "LMTP" in the 220 greeting. */
  banner?: string;
  /** Key and certificate (PEM) to offer STARTTLS; without them STARTTLS is not offered. */
  tls?: { key: string | Buffer; cert: string | Buffer };
  /** Simultaneous connections. Default 20. */
  maxClients?: number;
  /** Idle connection timeout. Default 60 s. */
  socketTimeoutMs?: number;
  /** After abort, how long open connections may finish their transaction. Default 2 s. */
  closeGraceMs?: number;
  /** Reconnect-style pauses when the port cannot be bound (in use...): initial..max, doubled. Default 1 s .. 60 s. */
  retry?: { initialMs?: number; maxMs?: number };
  logger?: Logger;
}

export const DEFAULT_LMTP_LISTEN = '127.0.0.1:2424';

/** "host:port" / "[v6]:port" / ":port" -> parts; throws an Error saying what a valid value looks like. */
export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(listen.trim());
  const port = m ? Number(m[3]) : NaN;
  if (!m || !(port >= 0 && port <= 65535)) {
    throw new Error(`invalid LMTP listen address "${listen}": use host:port, e.g. 127.0.0.1:2424`);
  }
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port };
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|localhost)$/i;

/** The sending MTA's queue id, from the topmost Received header ("... with ESMTP id 4CED431AA9F"). */
export function queueIdOf(raw: Buffer): string | null {
  // headers only, and only the first Received field (with its folded continuation lines)
  const head = raw.subarray(0, Math.min(raw.length, 64 * 1024)).toString('latin1');
  const end = head.search(/\r?\n\r?\n/);
  const headers = end >= 0 ? head.slice(0, end) : head;
  const m = /^Received:((?:.*)(?:\r?\n[ \t].*)*)/im.exec(headers);
  if (!m) return null;
  const id = /\bid\s+([A-Za-z0-9][A-Za-z0-9._-]{0,63})/i.exec(m[1]);
  return id ? id[1] : null;
}


class SmtpReply extends Error {
  constructor(
    readonly responseCode: number,
    message: string,
  ) {
    super(message);
  }
}

export class LmtpSource implements LiveSource {
  readonly key: string;
  readonly host: string;
  /** The configured port; after run() started listening, port() gives the bound one (useful with port 0). */
  private readonly configuredPort: number;
  private boundPort: number | null = null;
  private readonly addresses: Set<string> | null;
  private readonly maxMessageBytes: number;
  private readonly opts: LmtpSourceOptions;
  private readonly log: Logger;
  private listening = false;
  private problem: string | null = null;
  private counter = 0;
  private lastDelivery: number | null = null;
  private readonly listeners = new Set<() => void>();

  constructor(opts: LmtpSourceOptions = {}) {
    const { host, port } = parseListen(opts.listen ?? DEFAULT_LMTP_LISTEN);
    this.host = host;
    this.configuredPort = port;
    this.key = `lmtp:${host.includes(':') ? `[${host}]` : host}:${port}`;
    const addrs = (opts.addresses ?? []).map((a) => a.trim().toLowerCase()).filter(Boolean);
    this.addresses = addrs.length > 0 ? new Set(addrs) : null;
    this.maxMessageBytes = opts.maxMessageBytes ?? 64 * 1024 * 1024;
    this.opts = opts;
    this.log = (opts.logger ?? rootLog).child({ source: this.key });
  }

  /** The bound port while listening (the configured one otherwise). */
  port(): number {
    return this.boundPort ?? this.configuredPort;
  }

  /** Resolves once the server listens (or right away if it already does). For tests and startup checks. */
  whenListening(signal?: AbortSignal): Promise<void> {
    if (this.listening) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.listeners.delete(done);
        signal?.removeEventListener('abort', done);
        resolve();
      };
      this.listeners.add(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  health(): SourceHealth {
    if (!this.listening) return { ok: false, detail: this.problem ?? 'not listening' };
    const detail =
      `listening on ${this.host}:${this.port()}` +
      (this.lastDelivery ? `, last message ${Math.round((Date.now() - this.lastDelivery) / 1000)} s ago` : '') +
      (this.problem ? `; last problem: ${this.problem}` : '');
    return { ok: true, detail };
  }

  async run(opts: SourceRunOptions): Promise<void> {
    const { signal } = opts;
    const inflight = new Set<Promise<void>>();
    if (!LOOPBACK.test(this.host) && !this.opts.tls) {
      this.log.warn(
        `LMTP listens on ${this.host}, not loopback, without authentication: anyone who can reach the port can feed mail to the bot; firewall it or listen on 127.0.0.1`,
      );
    }
    let attempt = 0;
    let reported: string | null = null;
    while (!signal.aborted) {
      const server = this.createServer(opts, inflight);
      try {
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen(this.configuredPort, this.host, () => {
            server.removeListener('error', reject);
            resolve();
          });
        });
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        const why =
          e.code === 'EADDRINUSE'
            ? 'the address is in use (another patchvet, or another LMTP server?): stop it or change `listen`'
            : e.code === 'EACCES'
              ? 'permission denied (ports below 1024 need privileges): use a higher port'
              : e.code === 'EADDRNOTAVAIL'
                ? 'this machine has no such address: check `listen`'
                : String(e.message);
        const message = `cannot listen for LMTP on ${this.host}:${this.configuredPort}: ${why}`;
        this.problem = message;
        if (reported !== message) {
          reported = message;
          opts.onError({ source: this.key, message });
        }
        this.log.error(message);
        server.close();
        const initial = this.opts.retry?.initialMs ?? 1000;
        const max = this.opts.retry?.maxMs ?? 60_000;
        await sleep(Math.min(max, initial * 2 ** Math.min(attempt++, 20)), signal);
        continue;
      }
      const addr = server.server.address() as AddressInfo | null;
      this.boundPort = addr?.port ?? this.configuredPort;
      this.listening = true;
      this.problem = null;
      this.log.info({ host: this.host, port: this.boundPort }, 'LMTP source listening');
      [...this.listeners].forEach((l) => l());
      // runtime server errors (not per connection: those are handled by smtp-server) are logged
      server.on('error', (err: Error) => this.log.warn({ err: err.message }, 'LMTP server error'));

      await new Promise<void>((resolve) => {
        if (signal.aborted) return resolve();
        signal.addEventListener('abort', () => resolve(), { once: true });
      });
      // stop accepting; open connections get closeGraceMs to finish (then 421)
      await new Promise<void>((resolve) => server.close(() => resolve()));
      this.listening = false;
    }
    // a delivery in progress finishes (the core's store transaction), bounded
    if (inflight.size > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.allSettled([...inflight]),
        new Promise((r) => (timer = setTimeout(r, 10_000))),
      ]);
      clearTimeout(timer);
    }
    this.listening = false;
  }

  private createServer(opts: Parameters<LiveSource['run']>[0], inflight: Set<Promise<void>>): SMTPServer {
    const tls = this.opts.tls;
    const options: SMTPServerOptions = {
      lmtp: true,
      name: this.opts.hostname,
      banner: this.opts.banner ?? 'patchvet',
      size: this.maxMessageBytes,
      rejectOversized: true,
      authOptional: true,
      disabledCommands: tls ? ['AUTH'] : ['AUTH', 'STARTTLS'],
      hideSTARTTLS: !tls,
      ...(tls ? { key: tls.key, cert: tls.cert } : {}),
      disableReverseLookup: true,
      maxClients: this.opts.maxClients ?? 20,
      socketTimeout: this.opts.socketTimeoutMs ?? 60_000,
      closeTimeout: this.opts.closeGraceMs ?? 2000,
      logger: false,
      onRcptTo: (address, _session, callback) => {
        const rcpt = address.address.toLowerCase();
        if (this.addresses && !this.addresses.has(rcpt)) {
          return callback(new SmtpReply(550, `5.1.1 <${address.address}>: not a list this bot follows`));
        }
        callback();
      },
      onData: (stream, session, callback) => {
        const p = this.receive(stream, session, opts)
          .then((reply) => callback(null, reply))
          .catch((err: Error) => callback(err));
        inflight.add(p);
        void p.finally(() => inflight.delete(p));
      },
    };
    const server = new SMTPServer(options);
    return server;
  }

  /** Read one message and hand it to the core; resolves with the 250 text, rejects with the error to answer. */
  private async receive(
    stream: SMTPServerDataStream,
    session: SMTPServerSession,
    opts: Parameters<LiveSource['run']>[0],
  ): Promise<string> {
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    await new Promise<void>((resolve, reject) => {
      stream.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > this.maxMessageBytes) {
          // keep reading (the client is still sending) but keep nothing
          over = true;
          chunks.length = 0;
          return;
        }
        chunks.push(chunk);
      });
      stream.once('end', () => resolve());
      stream.once('error', reject);
    });
    const peer = session.remoteAddress || 'unknown';
    if (over || stream.sizeExceeded) {
      this.log.warn({ peer, bytes: size, limit: this.maxMessageBytes }, 'LMTP message over the size limit: rejected with 552');
      throw new SmtpReply(552, `5.3.4 message exceeds the ${this.maxMessageBytes}-byte limit`);
    }
    const raw = Buffer.concat(chunks, size);
    const n = ++this.counter;
    const id = queueIdOf(raw) ?? String(n);
    const source = `lmtp:${peer}:${id}`;
    const message: RawMessage = { raw, ref: { source, file: this.key, offset: 0, length: raw.length } };
    try {
      await opts.deliver({ messages: [message], position: null });
    } catch (err) {
      const why = (err as Error)?.message ?? String(err);
      this.problem = `storing a message failed: ${why}`;
      this.log.error({ peer, ref: source, err: why }, 'storing an LMTP message failed: answered 451 so the MTA retries');
      throw new SmtpReply(451, '4.3.0 could not store the message now, try again later');
    }
    this.lastDelivery = Date.now();
    this.problem = null;
    this.log.debug({ peer, ref: source, bytes: raw.length, rcpt: session.envelope.rcptTo.length }, 'LMTP message stored');
    return `2.0.0 stored (${id})`;
  }
}
