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

// ---------------------------------------------------------------- record spools written by many threads

/**
 * A folder of spool files, one per writer (each parser worker appends to its own file, so
 * records never travel to the main thread as text). Removed on close.
 */
export class SpoolDir {
  readonly dir: string;
  private files: string[] = [];
  private closed = false;

  constructor(prefix = 'patchvet-spool-') {
    this.dir = mkdtempSync(join(tmpdir(), prefix));
  }

  /** A new file name for one more writer; its number is its index in `paths`. */
  newFile(): { file: number; path: string } {
    const file = this.files.length;
    const path = join(this.dir, `w${file}.spool`);
    this.files.push(path);
    return { file, path };
  }

  get paths(): readonly string[] {
    return this.files;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Bytes staged before one write(2); also the largest piece that is copied instead of written alone. */
const STAGE_BYTES = 1 << 20;

/**
 * Appends strings (UTF-8) to one spool file. Appends are staged in memory and written by
 * flush(); a reader may only rely on what was flushed. Offsets are byte offsets in the file.
 */
export class SpoolWriter {
  private fd: number;
  private stage = Buffer.allocUnsafe(STAGE_BYTES);
  private staged = 0;
  /** File size once everything staged is written. */
  private size = 0;

  constructor(path: string) {
    this.fd = openSync(path, 'w');
  }

  /** Append one string; returns its byte offset and length. */
  append(s: string): { offset: number; length: number } {
    const offset = this.size;
    // Worst case 3 bytes per UTF-16 unit: check room without measuring the string first.
    if (s.length * 3 > STAGE_BYTES - this.staged) {
      this.flush();
      if (s.length * 3 > STAGE_BYTES) {
        const b = Buffer.from(s, 'utf8');
        this.writeAll(b);
        this.size += b.length;
        return { offset, length: b.length };
      }
    }
    const n = this.stage.write(s, this.staged, 'utf8');
    this.staged += n;
    this.size += n;
    return { offset, length: n };
  }

  flush(): void {
    if (this.staged === 0) return;
    this.writeAll(this.stage.subarray(0, this.staged));
    this.staged = 0;
  }

  private writeAll(b: Buffer): void {
    let done = 0;
    while (done < b.length) done += writeSync(this.fd, b, done, b.length - done);
  }

  close(): void {
    this.flush();
    closeSync(this.fd);
  }
}

/** Reads pieces of the spool files of a SpoolDir (opened on first use). */
export class SpoolReader {
  private fds: number[] = [];
  private buf = Buffer.allocUnsafe(64 * 1024);

  constructor(private paths: readonly string[]) {}

  /** Files added since (a replacement worker's); the known ones keep their numbers. */
  update(paths: readonly string[]): void {
    if (paths.length > this.paths.length) this.paths = paths;
  }

  /** The UTF-8 text at [offset, offset + length) of file number `file`. */
  text(file: number, offset: number, length: number): string {
    let fd = this.fds[file];
    if (fd === undefined) fd = this.fds[file] = openSync(this.paths[file], 'r');
    // A monstrous record gets a buffer of its own, so it does not stay allocated for the run.
    let buf = this.buf;
    if (length > buf.length) {
      buf = Buffer.allocUnsafe(length);
      if (length <= 4 * STAGE_BYTES) this.buf = buf;
    }
    let got = 0;
    while (got < length) {
      const n = readSync(fd, buf, got, length - got, offset + got);
      if (n <= 0) throw new Error(`spool: short read in file ${file} at ${offset}`);
      got += n;
    }
    return buf.toString('utf8', 0, length);
  }

  close(): void {
    for (const fd of this.fds) if (fd !== undefined) closeSync(fd);
    this.fds = [];
  }
}
