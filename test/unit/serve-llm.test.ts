// The LLM pass inside `patchvet serve`: the real service (store on SQLite and PostgreSQL, real
// SMTP receiver on loopback) with the real `openai` client against a local Chat Completions
// server. The reply carries the rule findings and the LLM's, tokens are counted per list in the
// store, a re-sent patch is answered from the cache, and a dead server leaves the rule findings.
import type { RawMessage } from '../../src/model.js';
import { ConfigError } from '../../src/serve/config.js';
import { Service } from '../../src/serve/service.js';
import { FakeOpenAI, answer, deadUrl, GOOD_FINDING } from '../helpers/fake-openai.js';
import {
  LIST,
  ONCE,
  PATCH_ID,
  STORES,
  TestSource,
  XEN_RULES,
  header,
  serveKit,
  sqliteHarness,
  useStore,
  variantOfPatch,
  type Rules,
  type SmtpReceiver,
} from '../helpers/serve.js';

const GOOD = GOOD_FINDING;

const kit = serveKit();
const config = (store: string, top: Record<string, unknown> = {}, list: Record<string, unknown> = {}) => kit.config(store, { top, list });
let rules: Rules;
let thread: RawMessage[];
let rx: SmtpReceiver;
let ai: FakeOpenAI;

beforeAll(() => {
  ({ rules, thread, rx } = kit);
});
beforeEach(async () => {
  ai = await FakeOpenAI.start();
});
afterEach(async () => {
  await ai.close();
});

function env(url = ai.url): Record<string, string> {
  return { OPENAI_BASE_URL: url, PATCHVET_LLM_MODEL: 'review-model', PATCHVET_LLM_TIMEOUT: '5', PATCHVET_LLM_RETRIES: '0' };
}

const today = () => new Date().toISOString().slice(0, 10);

describe.each(STORES)('serve with the LLM pass on %s', (_name, make) => {
  const h = useStore(make);

  test('one request per patch; the reply carries the rule findings and the LLM point; a re-send is answered from the cache', async () => {
    const url = await h.freshUrl();
    const src = new TestSource('test:llm');
    ai.push(answer({ findings: [GOOD] }, { prompt_tokens: 3000, completion_tokens: 120 }));
    const svc = await kit.open(config(url), [src], { env: env() });
    try {
      expect(svc.llm?.config.model).toBe('review-model');
      src.push(thread, 'p3');
      await svc.runOnce(ONCE);

      // Only the patch went to the model (the two replies are not patches).
      expect(ai.chats).toHaveLength(1);
      const req = ai.chats[0]!.body;
      expect(req.model).toBe('review-model');
      expect(req.response_format.type).toBe('json_schema');
      const user = req.messages.find((m: { role: string }) => m.role === 'user').content as string;
      expect(user).toContain('+|        vcpu_reset_fpu(v);');
      // The maintainer's comment on this patch is context, so the model does not repeat it.
      expect(user).toContain('this really should be part of allocating the memory');

      expect(rx.messages).toHaveLength(1);
      const m = rx.messages[0]!;
      expect(header(m.raw, 'In-Reply-To')).toBe(PATCH_ID);
      for (const r of XEN_RULES) expect(m.raw).toContain(`(${r}, warning)`);
      expect(m.raw).toContain('(llm/correctness, warning)');
      expect(m.raw).toContain('> +        vcpu_reset_fpu(v);');
      expect(m.raw).toContain('>          arch_vcpu_regs_init(v);');
      expect(m.raw.replace(/\s+/g, ' ')).toContain("Points marked llm/... are a language model's second reading");

      const st = svc.store;
      const stored = await st.findingsFor(PATCH_ID);
      expect(stored.map((f) => `${f.rule}:${f.source}`).sort()).toEqual(['llm/correctness:llm', ...XEN_RULES.map((r) => `${r}:rule`)]);
      expect(await st.tokensFor(today(), LIST)).toBe(3120);
      const metrics = await svc.metrics();
      expect(metrics.find((f) => f.name === 'patchvet_llm_tokens_total')?.samples).toEqual([{ labels: { list: LIST }, value: 3120 }]);
      expect(metrics.find((f) => f.name === 'patchvet_llm_patches_total')?.samples).toEqual([{ labels: { outcome: 'answered' }, value: 1 }]);

      // The same patch re-sent under a new Message-ID: answered from the cache, no request, no tokens.
      src.push([variantOfPatch(thread[0]!, { messageId: '<resend-1@citrix.com>', subject: "[PATCH v2 RESEND 1/9] x86/domain: Ensure a vCPU's FPU is reset early" })], 'p4');
      await svc.runOnce(ONCE);
      expect(ai.chats).toHaveLength(1);
      expect((await st.findingsFor('<resend-1@citrix.com>')).map((f) => f.rule)).toContain('llm/correctness');
      expect(await st.tokensFor(today(), LIST)).toBe(3120);
    } finally {
      await svc.stop();
    }
  });

  test('the LLM server is down: the rule findings go out alone and the failure is counted', async () => {
    const url = await h.freshUrl();
    const src = new TestSource('test:down');
    const svc = await kit.open(config(url), [src], { env: env(await deadUrl()) });
    try {
      src.push([thread[0]!], 'p1');
      await svc.runOnce(ONCE);
      expect(rx.messages).toHaveLength(1);
      const m = rx.messages[0]!;
      for (const r of XEN_RULES) expect(m.raw).toContain(`(${r}, warning)`);
      expect(m.raw).not.toContain('llm/');
      expect((await svc.store.findingsFor(PATCH_ID)).map((f) => f.rule).sort()).toEqual(XEN_RULES);
      const metrics = await svc.metrics();
      expect(metrics.find((f) => f.name === 'patchvet_errors_total')?.samples).toContainEqual({ labels: { source: 'llm' }, value: 1 });
      expect(metrics.find((f) => f.name === 'patchvet_llm_patches_total')?.samples).toEqual([{ labels: { outcome: 'unreachable' }, value: 1 }]);
    } finally {
      await svc.stop();
    }
  });
});

describe('serve: when the LLM pass runs', () => {
  const h = useStore(sqliteHarness);

  test('llm: off in the config, or llm: false on the list: nothing is sent even with the environment set', async () => {
    for (const [top, list] of [[{ llm: 'off' }, {}], [{}, { llm: false }]] as const) {
      const src = new TestSource('test:off');
      const svc = await kit.open(config(await h.freshUrl(), top, list), [src], { env: env() });
      try {
        src.push([thread[0]!], 'p1');
        await svc.runOnce(ONCE);
      } finally {
        await svc.stop();
      }
    }
    expect(ai.requests).toEqual([]);
    expect(rx.messages).toHaveLength(2);
  });

  test('without the environment nothing is sent (auto); llm: on without it is a config error naming the variables', async () => {
    const src = new TestSource('test:auto');
    const svc = await kit.open(config(await h.freshUrl()), [src], { env: {} });
    try {
      expect(svc.llm).toBeNull();
    } finally {
      await svc.stop();
    }
    const err = await Service.open({ config: config(await h.freshUrl(), { llm: 'on' }), sources: [], rules, env: {} }).catch((e) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect(String(err.message)).toMatch(/llm: on, but .*PATCHVET_LLM_MODEL.*OPENAI_BASE_URL/);
    const bad = await Service.open({ config: config(await h.freshUrl()), sources: [], rules, env: { ...env(), PATCHVET_LLM_TIMEOUT: 'soon' } }).catch((e) => e);
    expect(bad).toBeInstanceOf(ConfigError);
    expect(String(bad.message)).toContain('PATCHVET_LLM_TIMEOUT');
  });
});
