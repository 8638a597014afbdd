// The HTTP side of `patchvet serve` (node:http, no framework):
//   GET /healthz  -> 200 {"ok":true,...} when the store answers and every source is healthy, else 503
//   GET /metrics  -> Prometheus text exposition format 0.0.4
//   POST /api/github/webhooks -> the GitHub App (Probot checks the signature), when it is configured
// Everything else is 404 (the webhook path too when the App is not configured).
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';

export interface HealthReport {
  ok: boolean;
  [detail: string]: unknown;
}

export interface StatusProvider {
  health(): Promise<HealthReport>;
  metrics(): Promise<MetricFamily[]>;
}

export interface MetricFamily {
  name: string;
  help: string;
  type: 'counter' | 'gauge';
  samples: Array<{ labels?: Record<string, string>; value: number }>;
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function escapeHelp(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function formatValue(v: number): string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return '+Inf';
  if (v === -Infinity) return '-Inf';
  return String(v);
}

/** Prometheus text format: HELP and TYPE once per family, one line per sample. */
export function renderPrometheus(families: readonly MetricFamily[]): string {
  const out: string[] = [];
  for (const f of families) {
    out.push(`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.type}`);
    for (const s of f.samples) {
      const labels = Object.entries(s.labels ?? {});
      const l = labels.length ? `{${labels.map(([k, v]) => `${k}="${escapeLabel(v)}"`).join(',')}}` : '';
      out.push(`${f.name}${l} ${formatValue(s.value)}`);
    }
  }
  return out.join('\n') + '\n';
}

/** Where GitHub delivers webhooks (Probot's default path). */
export const WEBHOOK_PATH = '/api/github/webhooks';

export interface HttpOptions {
  /** The GitHub App's webhook handler; it reads the request body itself. */
  webhook?: (req: IncomingMessage, res: ServerResponse) => Promise<void>;
}

export interface HttpHandle {
  /** The port actually bound (useful with port 0). */
  port: number;
  host: string;
  close(): Promise<void>;
}

/** How long a health check may take before it counts as a failure. */
const HEALTH_TIMEOUT_MS = 5000;

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise<T>((_, reject) => {
      t = setTimeout(() => reject(new Error(`${what} took more than ${ms} ms`)), ms);
    }),
  ]);
}

async function handle(req: IncomingMessage, res: ServerResponse, provider: StatusProvider, log: Logger): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://localhost');
  const send = (status: number, type: string, body: string) => {
    res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
    res.end(req.method === 'HEAD' ? undefined : body);
  };
  const isGet = req.method === 'GET' || req.method === 'HEAD';
  if (url.pathname === '/healthz' && isGet) {
    let report: HealthReport;
    try {
      report = await withTimeout(provider.health(), HEALTH_TIMEOUT_MS, 'health check');
    } catch (e) {
      report = { ok: false, error: (e as Error).message };
    }
    send(report.ok ? 200 : 503, 'application/json; charset=utf-8', JSON.stringify(report) + '\n');
    return;
  }
  if (url.pathname === '/metrics' && isGet) {
    try {
      const families = await withTimeout(provider.metrics(), HEALTH_TIMEOUT_MS, 'metrics');
      send(200, 'text/plain; version=0.0.4; charset=utf-8', renderPrometheus(families));
    } catch (e) {
      log.error({ err: e }, 'http: /metrics failed');
      send(500, 'text/plain; charset=utf-8', `metrics unavailable: ${(e as Error).message}\n`);
    }
    return;
  }
  send(404, 'text/plain; charset=utf-8', 'not found\n');
}

/** Listen on host:port (port 0: any free port). */
export async function startHttp(
  listen: { host: string; port: number },
  provider: StatusProvider,
  log: Logger,
  opts: HttpOptions = {},
): Promise<HttpHandle> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!.replace(/\/+$/, '');
    if (opts.webhook && path === WEBHOOK_PATH) {
      opts.webhook(req, res).catch((e) => {
        log.error({ err: e }, 'http: webhook failed');
        if (!res.headersSent) res.writeHead(500);
        res.end();
      });
      return;
    }
    // Other request bodies are never read: drain them so keep-alive connections stay usable.
    req.resume();
    handle(req, res, provider, log).catch((e) => {
      log.error({ err: e }, 'http: request failed');
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });
  server.requestTimeout = 15_000;
  server.headersTimeout = 10_000;
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port, listen.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  return {
    port: addr.port,
    host: listen.host,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
