// serve's HTTP endpoints on a real socket: /healthz follows the store and the sources, /metrics
// is valid Prometheus text (checked line by line against the exposition format), and nothing
// else is served (the GitHub webhook path is reserved, 404 for now).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { buildConfig } from '../../src/serve/config.js';
import { renderPrometheus, startHttp, type MetricFamily } from '../../src/serve/http.js';
import { Service } from '../../src/serve/service.js';
import { mboxMessages, TestSource, XEN_THREAD } from '../helpers/serve.js';

const silent = pino({ level: 'silent' });

/** A strict reader of the Prometheus text format 0.0.4: throws on any line it does not accept. */
function parsePrometheus(text: string): Map<string, { type: string; samples: Array<{ labels: Record<string, string>; value: number }> }> {
  const families = new Map<string, { type: string; samples: Array<{ labels: Record<string, string>; value: number }> }>();
  const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
  const LABEL = '[a-zA-Z_][a-zA-Z0-9_]*="(?:\\\\[\\\\"n]|[^"\\\\\\n])*"';
  const SAMPLE = new RegExp(`^(${NAME})(?:\\{(${LABEL}(?:,${LABEL})*)?\\})? (NaN|[+-]Inf|[-+]?(?:\\d+\\.?\\d*|\\.\\d+)(?:[eE][-+]?\\d+)?)$`);
  expect(text.endsWith('\n')).toBe(true);
  for (const line of text.slice(0, -1).split('\n')) {
    let m: RegExpExecArray | null;
    if ((m = new RegExp(`^# HELP (${NAME}) (.*)$`).exec(line))) continue;
    if ((m = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`).exec(line))) {
      if (families.has(m[1]!)) throw new Error(`TYPE given twice for ${m[1]}`);
      families.set(m[1]!, { type: m[2]!, samples: [] });
      continue;
    }
    m = SAMPLE.exec(line);
    if (!m) throw new Error(`not a Prometheus line: ${JSON.stringify(line)}`);
    const fam = families.get(m[1]!);
    if (!fam) throw new Error(`sample before its TYPE: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:\\[\\"n]|[^"\\\n])*)"/g)) {
      labels[l[1]!] = l[2]!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
    }
    fam.samples.push({ labels, value: Number(m[3]) });
  }
  return families;
}

test('renderPrometheus escapes label values and help text', () => {
  const fams: MetricFamily[] = [
    { name: 'x_total', help: 'a\\b\nc', type: 'counter', samples: [{ labels: { source: 'imap://u@h/"IN\\BOX"\n' }, value: 3 }] },
    { name: 'y', help: 'lag', type: 'gauge', samples: [{ value: NaN }, { labels: { a: 'b' }, value: Infinity }] },
  ];
  const text = renderPrometheus(fams);
  expect(text).toBe(
    '# HELP x_total a\\\\b\\nc\n# TYPE x_total counter\nx_total{source="imap://u@h/\\"IN\\\\BOX\\"\\n"} 3\n' +
      '# HELP y lag\n# TYPE y gauge\ny NaN\ny{a="b"} +Inf\n',
  );
  const parsed = parsePrometheus(text);
  expect(parsed.get('x_total')!.samples[0]!.labels.source).toBe('imap://u@h/"IN\\BOX"\n');
});

test('healthz is 503 when the provider says so or fails; unknown paths and the webhook are 404', async () => {
  let ok = true;
  const h = await startHttp(
    { host: '127.0.0.1', port: 0 },
    {
      health: async () => {
        if (!ok) throw new Error('store down');
        return { ok: true };
      },
      metrics: async () => [],
    },
    silent,
  );
  try {
    const base = `http://127.0.0.1:${h.port}`;
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    ok = false;
    const r = await fetch(`${base}/healthz`);
    expect(r.status).toBe(503);
    expect(await r.json()).toEqual({ ok: false, error: 'store down' });
    expect((await fetch(`${base}/api/github/webhooks`, { method: 'POST', body: '{}' })).status).toBe(404);
    expect((await fetch(`${base}/`)).status).toBe(404);
    expect((await fetch(`${base}/healthz`, { method: 'DELETE' })).status).toBe(404);
  } finally {
    await h.close();
  }
});

test('a running service: healthz follows the sources and the store; metrics count what happened', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'patchvet-http-'));
  const src = new TestSource('public-inbox:/srv/inbox/xen-devel');
  const cfg = buildConfig(
    {
      store: `sqlite:${join(dir, 's.db')}`,
      lists: [{ address: 'xen-devel@lists.xenproject.org', reply: 'off' }],
      maxAge: 'off',
      delivery: { email: { outbox: join(dir, 'outbox') } },
      http: { listen: '127.0.0.1:0' },
      pollInterval: '100ms',
    },
    { env: {} },
  );
  const svc = await Service.open({ config: cfg, sources: [src], logger: silent });
  await svc.start();
  try {
    const base = `http://127.0.0.1:${svc.httpPort}`;
    const h1 = await fetch(`${base}/healthz`);
    expect(h1.status).toBe(200);
    expect(await h1.json()).toMatchObject({
      ok: true,
      store: { backend: 'sqlite', ok: true },
      sources: [{ key: 'public-inbox:/srv/inbox/xen-devel', ok: true }],
    });

    src.push(mboxMessages(XEN_THREAD), 'p');
    src.push([{ raw: Buffer.from('\x00\x01garbage'), ref: { source: 'g:0', file: 'g', offset: 0, length: 9 } }], 'q');
    await svc.settle();
    const text = await (await fetch(`${base}/metrics`)).text();
    const m = parsePrometheus(text);
    expect(m.get('patchvet_messages_total')).toEqual({ type: 'counter', samples: [{ labels: {}, value: 3 }] });
    const findings = m.get('patchvet_findings_total')!.samples;
    expect(findings.map((s) => s.labels.rule).sort()).toEqual(['xen/alloc-time-init', 'xen/fpu-init-order', 'xen/idle-vcpu-path']);
    expect(findings.every((s) => s.labels.severity === 'warning' && s.value === 1)).toBe(true);
    expect(m.get('patchvet_replies_total')!.samples).toEqual(
      expect.arrayContaining([
        { labels: { state: 'queued' }, value: 1 },
        { labels: { state: 'written' }, value: 1 },
      ]),
    );
    expect(m.get('patchvet_errors_total')!.samples).toEqual([{ labels: { source: 'public-inbox:/srv/inbox/xen-devel' }, value: 1 }]);
    expect(m.get('patchvet_source_lag_seconds')).toEqual({
      type: 'gauge',
      samples: [{ labels: { source: 'public-inbox:/srv/inbox/xen-devel' }, value: 0 }],
    });
    expect(m.get('patchvet_outbox_items')!.samples).toContainEqual({ labels: { state: 'sent' }, value: 1 });

    // A source that is down makes the service unhealthy, and healthy again when it recovers.
    src.ok = false;
    const h2 = await fetch(`${base}/healthz`);
    expect(h2.status).toBe(503);
    expect(await h2.json()).toMatchObject({ ok: false, sources: [{ ok: false }] });
    src.ok = true;
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
  } finally {
    await svc.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a port in use is a configuration error naming http.listen', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'patchvet-http-busy-'));
  const blocker = await startHttp({ host: '127.0.0.1', port: 0 }, { health: async () => ({ ok: true }), metrics: async () => [] }, silent);
  const cfg = buildConfig(
    { store: `sqlite:${join(dir, 's.db')}`, http: { listen: `127.0.0.1:${blocker.port}` }, delivery: { email: { outbox: join(dir, 'o') } } },
    { env: {} },
  );
  const svc = await Service.open({ config: cfg, sources: [], logger: silent });
  try {
    await expect(svc.start()).rejects.toThrow(`http.listen: cannot listen on 127.0.0.1:${blocker.port}: the address is in use`);
  } finally {
    await svc.stop();
    await blocker.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
