// A temporary append-only file of JSON records, so a run over a huge archive keeps only a
// small index in memory and reads full records back one thread at a time.
import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface SpoolHandle {
  offset: number;
  length: number;
}

export class Spool<T> {
  private fd: number;
  private dir: string;
  private size = 0;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private closed = false;

  constructor(prefix = 'patchvet-spool-') {
    this.dir = mkdtempSync(join(tmpdir(), prefix));
    this.fd = openSync(join(this.dir, 'records.jsonl'), 'w+');
  }

  append(value: T): SpoolHandle {
    return this.appendJson(JSON.stringify(value));
  }

  /** Append a value already serialised (e.g. by the worker that made it). */
  appendJson(json: string): SpoolHandle {
    const buf = Buffer.from(json + '\n', 'utf8');
    const h = { offset: this.size, length: buf.length - 1 };
    this.size += buf.length;
    this.pending.push(buf);
    this.pendingBytes += buf.length;
    if (this.pendingBytes > 4 * 1024 * 1024) this.flush();
    return h;
  }

  read(h: SpoolHandle): T {
    if (this.pendingBytes) this.flush();
    const buf = Buffer.allocUnsafe(h.length);
    let got = 0;
    while (got < h.length) {
      const n = readSync(this.fd, buf, got, h.length - got, h.offset + got);
      if (n <= 0) throw new Error(`spool: short read at ${h.offset}`);
      got += n;
    }
    return JSON.parse(buf.toString('utf8')) as T;
  }

  private flush(): void {
    const all = Buffer.concat(this.pending, this.pendingBytes);
    let done = 0;
    while (done < all.length) done += writeSync(this.fd, all, done, all.length - done, this.size - this.pendingBytes + done);
    this.pending = [];
    this.pendingBytes = 0;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      closeSync(this.fd);
    } finally {
      rmSync(this.dir, { recursive: true, force: true });
    }
  }
}
