// A local server that speaks the Chat Completions API (POST /v1/chat/completions, not
// streaming) on 127.0.0.1, for tests that drive the real `openai` client. It records every
// request (method, path, headers, parsed body) and answers from a queue of scripted
// responses: a completion with given content, any status with headers (429 + Retry-After),
// raw bodies, or a request left hanging (a slow server). An empty queue answers `fallback`.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: any;
}

export interface Scripted {
  /** HTTP status (default 200). */
  status?: number;
  headers?: Record<string, string>;
  /** The assistant message content of a 200 completion. */
  content?: string | null;
  refusal?: string;
  finishReason?: string;
  usage?: { prompt_tokens: number; completion_tokens: number; total_tokens?: number };
  /** A raw response body instead (an object is sent as JSON). */
  body?: unknown;
  /** Never answer (until the server closes). */
  hang?: boolean;
}

/**
 * A point on the reference patch that neither the rules nor the maintainer made, on a real
 * line of its diff (xen/arch/x86/domain.c:529, an added-context line): what a good model answers.
 */
export const GOOD_FINDING = {
  file: 'xen/arch/x86/domain.c',
  line: 529,
  code: '        arch_vcpu_regs_init(v);',
  category: 'correctness',
  severity: 'warning',
  message: 'arch_vcpu_regs_init() rewrites the FPU control words that vcpu_reset_fpu() just set, so the early reset is lost.',
  rule: 'none',
  confidence: 0.9,
};

/** A scripted 200 answer whose content is the JSON of `value` (e.g. {findings: [...]}). */
export function answer(value: unknown, usage = { prompt_tokens: 1200, completion_tokens: 80 }): Scripted {
  return { content: JSON.stringify(value), usage };
}

export class FakeOpenAI {
  readonly requests: RecordedRequest[] = [];
  private queue: Scripted[] = [];
  fallback: Scripted = answer({ findings: [] });
  private constructor(
    private server: Server,
    readonly url: string,
  ) {}

  static async start(): Promise<FakeOpenAI> {
    let self: FakeOpenAI | undefined;
    const server = createServer((req, res) => void self!.handle(req, res));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    self = new FakeOpenAI(server, `http://127.0.0.1:${port}/v1`);
    return self;
  }

  push(...s: Scripted[]): this {
    this.queue.push(...s);
    return this;
  }

  /** The requests to the chat completions endpoint, bodies parsed. */
  get chats(): RecordedRequest[] {
    return this.requests.filter((r) => r.path === '/v1/chat/completions');
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    let body: any = text;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      /* recorded as text */
    }
    const path = (req.url ?? '').split('?')[0]!;
    this.requests.push({ method: req.method ?? '', path, headers: req.headers, body });
    if (req.method !== 'POST' || path !== '/v1/chat/completions') {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { message: `no route ${req.method} ${path}` } }));
      return;
    }
    const s = this.queue.shift() ?? this.fallback;
    if (s.hang) return; // the client times out; close() ends the socket
    const status = s.status ?? 200;
    const headers = { 'content-type': 'application/json', ...(s.headers ?? {}) };
    if (s.body !== undefined) {
      res.writeHead(status, headers).end(typeof s.body === 'string' ? s.body : JSON.stringify(s.body));
      return;
    }
    if (status !== 200) {
      res.writeHead(status, headers).end(JSON.stringify({ error: { message: `scripted ${status}`, type: 'scripted' } }));
      return;
    }
    const u = s.usage ?? { prompt_tokens: 1000, completion_tokens: 50 };
    res.writeHead(200, headers).end(
      JSON.stringify({
        id: `chatcmpl-${this.requests.length}`,
        object: 'chat.completion',
        created: 1_800_000_000,
        model: body?.model ?? 'unknown',
        choices: [
          {
            index: 0,
            message: { role: 'assistant', content: s.content ?? null, refusal: s.refusal ?? null },
            finish_reason: s.finishReason ?? 'stop',
          },
        ],
        usage: { ...u, total_tokens: u.total_tokens ?? u.prompt_tokens + u.completion_tokens },
      }),
    );
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

/** A loopback URL where nothing listens (a server that is down). */
export async function deadUrl(): Promise<string> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return `http://127.0.0.1:${port}/v1`;
}
