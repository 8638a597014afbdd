// The run's temporary spool: append-only files of records (one per writing thread), so a run
// over a huge archive keeps only a small index in memory and reads records back one thread at
// a time.
import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// ---------------------------------------------------------------- record spools written by many threads

/**
 * A folder of spool files, one per writer (each parser worker appends to its own file, so
 * records never travel to the main thread as text). Removed on close.
 */
/** Spool folders not closed yet: removed when the process exits without closing them. */
const openDirs = new Set<string>();
let exitHook = false;

export class SpoolDir {
  readonly dir: string;
  private files: string[] = [];
  private closed = false;

  constructor(prefix = 'patchvet-spool-') {
    this.dir = mkdtempSync(join(tmpdir(), prefix));
    openDirs.add(this.dir);
    if (!exitHook) {
      exitHook = true;
      process.on('exit', () => {
        for (const d of openDirs) rmSync(d, { recursive: true, force: true });
      });
    }
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
    openDirs.delete(this.dir);
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
