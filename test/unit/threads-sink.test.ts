// The threads JSON written before series are grouped (on worker threads): seriesId slots left
// open, filled in afterwards, must give exactly the JSON written with the series ids at hand.
import { recordFromRaw } from '../../src/mail/record.js';
import { assembleThread } from '../../src/thread/assemble.js';
import { fillSeriesSlots, threadJson, threadJsonSlots } from '../../src/sinks/threads.js';
import type { MessageRecord } from '../../src/model.js';

const ref = (source: string) => ({ source, file: source, offset: 0, length: 0 });

async function record(id: string, subject: string, inReplyTo?: string): Promise<MessageRecord> {
  const raw =
    `From: "Slot \\"seriesId\\":\\"\x01\\"" <a@example.org>\nMessage-ID: <${id}>\n` +
    (inReplyTo ? `In-Reply-To: <${inReplyTo}>\n` : '') +
    `Subject: ${subject}\nDate: Tue, 24 Mar 2026 18:19:29 +0000\n\n` +
    `Text quoting the slot: "seriesId":"\x01" and "seriesId":"\\u0001".\n`;
  return recordFromRaw({ raw: Buffer.from(raw, 'utf8'), ref: ref(id) });
}

test('filled slots give the JSON written with the series ids, even where mail text looks like a slot', async () => {
  const recs = new Map<string, MessageRecord>();
  recs.set('<p1@x>', await record('p1@x', '[PATCH 1/2] "seriesId":"\x01" in a subject'));
  recs.set('<p2@x>', await record('p2@x', '[PATCH 2/2] "seriesId":"\\u0001"', 'p1@x'));
  recs.set('<r@x>', await record('r@x', 'Re: [PATCH 1/2]', 'p1@x'));
  const t = assembleThread(
    {
      root: '<p1@x>',
      rootMissing: false,
      subject: recs.get('<p1@x>')!.subject,
      messages: [
        { messageId: '<gone@x>', parent: null, ghost: true, children: ['<p1@x>'] },
        { messageId: '<p1@x>', parent: '<gone@x>', ghost: false, children: ['<p2@x>', '<r@x>'] },
        { messageId: '<p2@x>', parent: '<p1@x>', ghost: false, children: [] },
        { messageId: '<r@x>', parent: '<p1@x>', ghost: false, children: [] },
      ],
    },
    (id) => recs.get(id),
  );
  const series: Record<string, string> = { '<p1@x>': '<p1@x>', '<p2@x>': '<p1@x>' };
  const seriesOf = (id: string) => series[id];
  const { text, ids } = threadJsonSlots(t);
  // One slot a message with a record (the ghost has no seriesId), in thread order.
  expect(ids).toEqual(['<p1@x>', '<p2@x>', '<r@x>']);
  const filled = fillSeriesSlots(text, ids, seriesOf);
  expect(filled).toBe(JSON.stringify(threadJson(t, seriesOf)));
  expect(JSON.parse(filled).messages.map((m: any) => m.seriesId)).toEqual([undefined, '<p1@x>', '<p1@x>', null]);
  // The look-alikes in the mail text are still there, untouched.
  expect(JSON.parse(filled).messages[1].subject).toContain('"seriesId":"\x01"');
});

test('a slot count that does not match the ids is an error, not a shifted series id', () => {
  expect(() => fillSeriesSlots('{"seriesId":"\\u0001"}', [], () => 'x')).toThrow(/1 seriesId slots for 0 messages/);
});
