import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readFixtureMails } from '../helpers/mbox.js';
import type { ReplyBlock } from '../../src/model.js';
import { isAttributionLine, newText, parseQuoteMarker, splitReply } from '../../src/patch/quote.js';

const REPLIES = join(process.cwd(), 'test/fixtures/replies');

const readMbox = readFixtureMails;

const texts = (blocks: ReplyBlock[]) => blocks.flatMap((b) => (b.type === 'text' ? [b.text] : []));
const types = (blocks: ReplyBlock[]) => blocks.map((b) => b.type);
const quotes = (blocks: ReplyBlock[]) => blocks.filter((b): b is Extract<ReplyBlock, { type: 'quote' }> => b.type === 'quote');

describe('parseQuoteMarker', () => {
  test('depth per line, one space removed after the markers', () => {
    expect(parseQuoteMarker('> foo')).toEqual({ depth: 1, content: 'foo' });
    expect(parseQuoteMarker('>> foo')).toEqual({ depth: 2, content: 'foo' });
    expect(parseQuoteMarker('> > foo')).toEqual({ depth: 2, content: 'foo' });
    expect(parseQuoteMarker('>')).toEqual({ depth: 1, content: '' });
    expect(parseQuoteMarker('>foo')).toEqual({ depth: 1, content: 'foo' });
    // A quoted context line keeps its own leading space.
    expect(parseQuoteMarker('>          if ( rc )')).toEqual({ depth: 1, content: '         if ( rc )' });
    expect(parseQuoteMarker('no quote')).toEqual({ depth: 0, content: 'no quote' });
  });
});

describe('splitReply on the reference thread', () => {
  let review: string;
  let answer: string;
  let answerRaw: string;
  beforeAll(async () => {
    const msgs = await readMbox('xen-fpu-reset-v2-1of9.mbox');
    review = msgs[1]!.mail.text!;
    answer = msgs[2]!.mail.text!;
    answerRaw = msgs[2]!.rawBody;
  });

  test("maintainer's review: attribution, then quotes and answers in order", () => {
    const blocks = splitReply(review);
    expect(blocks[0]).toEqual({ type: 'attribution', text: 'On 24/03/2026 6:19 pm, Ross Lagerwall wrote:' });
    expect(types(blocks)).toEqual(['attribution', 'quote', 'text', 'quote', 'text', 'quote', 'text']);
    const t = texts(blocks);
    expect(t[0]!.startsWith('How?\n\nI don\'t think a PV vCPU can.')).toBe(true);
    expect(t[0]!.endsWith('on INIT.')).toBe(true);
    // The mboxrd-escaped line comes back as text, not as a quote.
    expect(t[1]).toContain("From Xen's point of view, vcpu_create() is the only #RESET-like thing");
    expect(t[1]!.endsWith('Anyway, returning from the tangent ...')).toBe(true);
    expect(t[2]!.startsWith('... this really should be part of allocating the memory.')).toBe(true);
    // The sign-off is part of the text.
    expect(t[2]!.endsWith('any other bugfixes is going to be fruitful.\n\n~Andrew')).toBe(true);
    // The quoted patch: markers removed, context lines keep their leading space.
    const q = quotes(blocks)[2]!;
    expect(q.lines).toContain('+        vcpu_reset_fpu(v);');
    expect(q.lines).toContain('         if ( (rc = vcpu_init_fpu(v)) != 0 )');
    expect(q.lines[q.lines.length - 1]).toBe('+');
    expect(q.depths.every((d) => d === 1)).toBe(true);
  });

  test("author's format=flowed answer: review at depth 1, patch at depth 2", () => {
    const blocks = splitReply(answer);
    expect(blocks[0]).toEqual({ type: 'attribution', text: 'On 3/24/26 11:02 PM, Andrew Cooper wrote:' });
    const t = texts(blocks);
    expect(t).toHaveLength(3);
    expect(t[0]!.startsWith('Yes, then a subsequent VCPUOP_up allows the VCPU to be scheduled.')).toBe(true);
    // "..." glued to the log lines is part of the text, not an elision.
    expect(t[0]!.endsWith('(set fpu_initialised to 1)\n...')).toBe(true);
    expect(t[1]).toBe(
      'No, since it means the backing memory has been properly initialised by\nthe time fpu_initalised gets unilaterally set in\nvcpu_restore_fpu_nonlazy()...',
    );
    expect(t[2]).toBe('... but yes, that does seem like the best way to fix this.\n\nRoss');
    const q = quotes(blocks)[0]!;
    expect(q.lines[0]).toBe('On 24/03/2026 6:19 pm, Ross Lagerwall wrote:');
    expect(q.depths.slice(0, 3)).toEqual([1, 2, 2]);
    const all = quotes(blocks).flatMap((b) => b.lines.map((l, i) => [l, b.depths[i]] as const));
    expect(all).toContainEqual(['... this really should be part of allocating the memory.', 1]);
    expect(all.some(([l, d]) => d === 2 && l.trim() === 'if ( (rc = vcpu_init_fpu(v)) != 0 )')).toBe(true);
  });

  test('the same answer before format=flowed decoding gives the same new text', () => {
    // mailparser undoes format=flowed (and joins ">>   " with the next line); a raw body must split the same way.
    expect(answerRaw).toContain('>>   \n>> +        vcpu_reset_fpu(v);');
    expect(texts(splitReply(answerRaw))).toEqual(texts(splitReply(answer)));
  });
});

describe('splitReply on other real replies', () => {
  test('Reviewed-by after a quoted commit message (xen-eager-fpu-v2, 5/9)', async () => {
    const msgs = await readMbox('xen-eager-fpu-v2.mbox');
    const r = msgs.find((m) => m.mail.subject === 'Re: [PATCH v2 5/9] x86/traps: Remove lazy FPU support')!;
    const blocks = splitReply(r.mail.text!);
    expect(types(blocks)).toEqual(['attribution', 'quote', 'text']);
    expect(newText(blocks)).toBe('Reviewed-by: Andrew Cooper <andrew.cooper3@citrix.com>');
    expect(quotes(blocks)[0]!.lines[0]).toBe('From: Wei Liu <wei.liu2@citrix.com>');
  });

  test("Jan's conditional Reviewed-by and his answer to the notes (xen-ftw-alloc)", async () => {
    const msgs = await readMbox('xen-ftw-alloc.mbox');
    const r = msgs.find((m) => m.mail.messageId && m.mail.from?.text.includes('Jan Beulich') && m.mail.text!.includes('as well as'))!;
    const t = texts(splitReply(r.mail.text!));
    expect(t).toHaveLength(2);
    expect(t[0]).toMatch(/^The title using "as well as" reads to me/);
    expect(t[0]).toMatch(/\nReviewed-by: Jan Beulich <jbeulich@suse.com>$/);
    expect(t[1]).toMatch(/^I think it tries to say that the values put in memory/);
    expect(t[1]).toMatch(/\n\nJan$/);
  });
});

describe('splitReply: clients and conventions', () => {
  test('Outlook top-posting: everything below the separator is quoted, list footer dropped', () => {
    const blocks = splitReply(readFileSync(join(REPLIES, 'outlook-top-post.txt'), 'utf8'));
    expect(types(blocks)).toEqual(['text', 'attribution', 'quote']);
    expect(texts(blocks)[0]).toBe(
      'Looks fine to me, but please split the FCW change out into its own patch.\n\nReviewed-by: Paul Durrant <paul@xen.org>\n\nThanks,\n  Paul',
    );
    const a = blocks[1] as { text: string };
    expect(a.text.split('\n')[0]).toBe('-----Original Message-----');
    expect(a.text).toContain('Subject: [PATCH 3/4] x86/fpu: Check the save area in both allocation paths');
    // The wrapped Cc: line belongs to the header block.
    expect(a.text).toContain('Roger Pau Monne');
    const q = quotes(blocks)[0]!;
    expect(q.lines[0]).toBe('The save area can be missing if allocation failed part way; check for it');
    expect(q.lines).toContain('+    v->arch.fully_eager_fpu = true;');
    expect(q.depths.every((d) => d === 1)).toBe(true);
    expect(q.lines.join('\n')).not.toContain('mailing list');
  });

  test('Outlook "____" rule with a header block, original already quoted with ">"', () => {
    const body = [
      'Acked-by: Roger Pau Monné <roger.pau@citrix.com>',
      '',
      '________________________________',
      'From: Ross Lagerwall <ross.lagerwall@citrix.com>',
      'Sent: Friday, March 27, 2026 10:04 AM',
      'To: xen-devel@lists.xenproject.org <xen-devel@lists.xenproject.org>',
      'Subject: Re: [PATCH 3/4] x86/fpu: Check the save area in both allocation paths',
      '',
      'Ping?',
      '',
      '> On 26.03.2026 19:04, Jan Beulich wrote:',
      '> Looks okay.',
    ].join('\n');
    const blocks = splitReply(body);
    expect(types(blocks)).toEqual(['text', 'attribution', 'quote']);
    expect(newText(blocks)).toBe('Acked-by: Roger Pau Monné <roger.pau@citrix.com>');
    const q = quotes(blocks)[0]!;
    expect(q.lines).toEqual(['Ping?', '', 'On 26.03.2026 19:04, Jan Beulich wrote:', 'Looks okay.']);
    expect(q.depths).toEqual([1, 1, 2, 2]);
  });

  test('a "From:" line in text without a header block is not a quote', () => {
    const blocks = splitReply('From: the spec, FTW is abridged.\nSo 0 means all empty.');
    expect(types(blocks)).toEqual(['text']);
  });

  test('attributions: wrapped on two lines, German, French, Gnus, Outlook one-liner', () => {
    const wrapped = splitReply('On Tue, 24 Mar 2026 at 18:19, Ross Lagerwall\n<ross.lagerwall@citrix.com> wrote:\n> +    foo();\n\nWhy?');
    expect(wrapped[0]).toEqual({
      type: 'attribution',
      text: 'On Tue, 24 Mar 2026 at 18:19, Ross Lagerwall <ross.lagerwall@citrix.com> wrote:',
    });
    expect(types(wrapped)).toEqual(['attribution', 'quote', 'text']);
    for (const a of [
      'Am 24.03.2026 um 19:19 schrieb Ross Lagerwall:',
      'Le 24/03/2026 à 19:19, Ross Lagerwall a écrit :',
      'Jan Beulich <jbeulich@suse.com> writes:',
      'From: Ross Lagerwall <ross.lagerwall@citrix.com> Sent: Friday, March 27, 2026 3:04 AM',
    ]) {
      expect(types(splitReply(`${a}\n\n> quoted\n\nanswer`))).toEqual(['attribution', 'quote', 'text']);
    }
    // Gnus users greet between the attribution and the quote.
    expect(types(splitReply('Jan Beulich <jbeulich@suse.com> writes:\n\nHello Ross,\n\n> quoted\n\nanswer'))).toEqual([
      'attribution',
      'text',
      'quote',
      'text',
    ]);
    // Prose that happens to end in "wrote:" without a quote after it stays text.
    expect(isAttributionLine('On reflection, here is what Jan wrote:', false)).toBe(false);
    expect(types(splitReply('As Jan wrote:\nthis is fine.'))).toEqual(['text']);
  });

  test('elisions: "[...]", "[snip]", "<snip>" and a bare "..." between quotes', () => {
    const body = [
      '> a',
      '[...]',
      '> b',
      '',
      '[snip]',
      '',
      '> c',
      '<snip>',
      '> d',
      '',
      '...',
      '',
      '> e',
      '',
      'answer',
    ].join('\n');
    const blocks = splitReply(body);
    expect(types(blocks)).toEqual(['quote', 'elision', 'quote', 'elision', 'quote', 'elision', 'quote', 'elision', 'quote', 'text']);
    expect(blocks.filter((b) => b.type === 'elision').map((b) => (b as { text: string }).text)).toEqual(['[...]', '[snip]', '<snip>', '...']);
    // "..." in the middle of new text is text.
    expect(types(splitReply('> q\n\nFirst.\n\n...\n\nSecond.'))).toEqual(['quote', 'text']);
  });

  test('nested quotes: depth per line, blank quoted lines kept', () => {
    const blocks = splitReply('> > a\n>> b\n>\n> c\n> >> d\n\nx');
    const q = quotes(blocks)[0]!;
    expect(q.lines).toEqual(['a', 'b', '', 'c', 'd']);
    expect(q.depths).toEqual([2, 2, 1, 1, 3]);
  });

  test('a quote re-wrapped by the client: the tail without ">" stays quoted', () => {
    const body = readFileSync(join(REPLIES, 'rewrapped-lost.txt'), 'utf8');
    const blocks = splitReply(body);
    expect(types(blocks)).toEqual(['attribution', 'quote', 'text']);
    const q = quotes(blocks)[0]!;
    expect(q.lines[3]).toBe('resetting to defaults\\n", v);');
    expect(q.depths[3]).toBe(1);
    expect(texts(blocks)).toEqual(['Drop the printk(); -ENOMEM says enough.\n\n~Andrew']);
  });

  test('a quoted prose line broken in two: lowercase tail is quoted, a short answer is not', () => {
    const long = '> v->is_initialised is a PV-ism which has infected x86 HVM and non-x86';
    expect(long.length).toBe(70); // + ' architectures' would pass 72 columns
    const wrapped = splitReply(`${long}\narchitectures too.\n> The key thing which PV vCPUs need\n\nAgreed.`);
    expect(quotes(wrapped)[0]!.lines).toEqual([
      'v->is_initialised is a PV-ism which has infected x86 HVM and non-x86',
      'architectures too.',
      'The key thing which PV vCPUs need',
    ]);
    expect(texts(wrapped)).toEqual(['Agreed.']);
    // A genuine one-line answer between quotes stays new text.
    const answered = splitReply(`${long}\nHow?\n> The key thing which PV vCPUs need\n\nAgreed.`);
    expect(texts(answered)).toEqual(['How?', 'Agreed.']);
    // So does a lowercase answer after a short quoted line (nothing was wrapped there).
    expect(texts(splitReply('> Is this needed?\nnope, dropped in v3.\n> Next point'))).toEqual(['nope, dropped in v3.']);
  });

  test('signature after "-- " and the list footer are not new text', () => {
    const body = [
      '> quoted',
      '',
      'Fine by me.',
      '',
      '-- ',
      'Jane Doe',
      'Example Corp',
      '_______________________________________________',
      'Xen-devel mailing list',
      'Xen-devel@lists.xenproject.org',
      'https://lists.xenproject.org/mailman/listinfo/xen-devel',
    ].join('\n');
    expect(texts(splitReply(body))).toEqual(['Fine by me.']);
    // A top-poster's signature sits above the quote: the quote still follows.
    const top = splitReply('Fine.\n\n--\nJane\n\nOn Tue, 24 Mar 2026 at 18:19, Ross Lagerwall wrote:\n> quoted');
    expect(types(top)).toEqual(['text', 'attribution', 'quote']);
  });

  test('CRLF line ends and mboxo ">From " escaping inside text', () => {
    const blocks = splitReply('> quoted\r\n\r\nSee the SDM.\r\n>From the SDM, FTW is abridged.\r\nSo 0 is empty.\r\n');
    expect(types(blocks)).toEqual(['quote', 'text']);
    expect(texts(blocks)[0]).toBe('See the SDM.\nFrom the SDM, FTW is abridged.\nSo 0 is empty.');
  });

  test('newText joins the stretches of new text', () => {
    const blocks = splitReply('> a\n\nOne.\n\n> b\n\nTwo.\nReviewed-by: Jan Beulich <jbeulich@suse.com>\n');
    expect(newText(blocks)).toBe('One.\n\nTwo.\nReviewed-by: Jan Beulich <jbeulich@suse.com>');
    expect(newText(splitReply('> only a quote'))).toBe('');
  });
});
