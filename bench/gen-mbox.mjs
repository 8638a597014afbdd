#!/usr/bin/env node
// Generate a large mbox for benchmarks by repeating the real linux-hyperv sample.
//
//   node bench/gen-mbox.mjs <out.mbox> <sizeMB> [sample.mbox.gz]
//
// Repetition 0 is the sample as it is; in repetition N >= 1 every id in the Message-ID,
// In-Reply-To and References headers gets "-r<N>" before its '@' ("<abc@host>" -> "<abc-rN@host>"),
// so each repetition keeps its threads intact without colliding with the others. Writing stops at
// the first message boundary at or after <sizeMB> MiB. Streaming: memory stays flat whatever the size.
// The sample is a clean mboxrd (every line starting with "From " is an envelope), which is what lets
// bodies be copied in bulk.
import { createReadStream, createWriteStream } from 'node:fs';
import { createGunzip } from 'node:zlib';
import { once } from 'node:events';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const [outPath, sizeArg, sampleArg] = process.argv.slice(2);
const sizeMb = Number(sizeArg);
if (!outPath || !(sizeMb > 0)) {
  process.stderr.write('usage: node bench/gen-mbox.mjs <out.mbox> <sizeMB> [sample.mbox.gz]\n');
  process.exit(2);
}
const sample = sampleArg ?? join(here, '..', '..', 'shared', 'fixtures', 'real', 'linux-hyperv-2026.mbox.gz');
const target = sizeMb * 1024 * 1024;

const NL = 0x0a;
const NL_FROM = Buffer.from('\nFrom ', 'latin1');
const ID_HEADER = /^(message-id|in-reply-to|references)\s*:/i;
const ID = /<([^<>\s]+)>/g;

const out = createWriteStream(outPath);
let written = 0;
let pending = [];
let pendingLen = 0;

async function emit(buf) {
  if (buf.length === 0) return;
  pending.push(buf);
  pendingLen += buf.length;
  written += buf.length;
  if (pendingLen >= 1 << 20) await flush();
}

async function flush() {
  if (pendingLen === 0) return;
  const b = Buffer.concat(pending, pendingLen);
  pending = [];
  pendingLen = 0;
  if (!out.write(b)) await once(out, 'drain');
}

function rewriteIds(line, rep) {
  // latin1 keeps every byte as it is
  const s = line.toString('latin1').replace(ID, (_, id) => {
    const at = id.lastIndexOf('@');
    return at < 0 ? `<${id}-r${rep}>` : `<${id.slice(0, at)}-r${rep}${id.slice(at)}>`;
  });
  return Buffer.from(s, 'latin1');
}

/** Copy one repetition; returns false once the target size is reached (at a message boundary). */
async function copyOnce(rep) {
  let state = 'hdr'; // 'hdr': line by line (envelope + header); 'body': copied in bulk up to "\nFrom "
  let inIdHeader = false;
  let carry = null;
  const src = createReadStream(sample).pipe(createGunzip());
  try {
    for await (const chunk of src) {
      const buf = carry ? Buffer.concat([carry, chunk]) : chunk;
      carry = null;
      let pos = 0;
      while (pos < buf.length) {
        if (state === 'body') {
          const i = buf.indexOf(NL_FROM, pos);
          if (i < 0) {
            // keep a tail that could be the start of "\nFrom "
            const keep = Math.max(pos, buf.length - (NL_FROM.length - 1));
            await emit(buf.subarray(pos, keep));
            carry = Buffer.from(buf.subarray(keep));
            pos = buf.length;
            break;
          }
          await emit(buf.subarray(pos, i + 1));
          pos = i + 1;
          state = 'hdr';
          continue;
        }
        const nl = buf.indexOf(NL, pos);
        if (nl < 0) {
          carry = Buffer.from(buf.subarray(pos));
          break;
        }
        const line = buf.subarray(pos, nl + 1);
        pos = nl + 1;
        if (line.length === 1 || (line.length === 2 && line[0] === 0x0d)) {
          await emit(line);
          state = 'body';
          inIdHeader = false;
          continue;
        }
        if (line.toString('latin1', 0, 5) === 'From ') {
          if (written >= target) return false;
          await emit(line);
          continue;
        }
        if (line[0] !== 0x20 && line[0] !== 0x09) inIdHeader = ID_HEADER.test(line.toString('latin1', 0, 40));
        await emit(inIdHeader && rep > 0 ? rewriteIds(line, rep) : line);
      }
    }
    if (carry) await emit(carry);
    return written < target;
  } finally {
    src.destroy();
  }
}

for (let rep = 0; await copyOnce(rep); rep++) {
  if (rep > 100000) throw new Error('the sample produced no data');
}
await flush();
out.end();
await once(out, 'finish');
process.stderr.write(`gen-mbox: wrote ${(written / (1024 * 1024)).toFixed(1)} MB to ${outPath}\n`);
