/**
 * The operator attacker: someone with the server's files (the data folder: SQLite databases with
 * their -wal and -shm files, keys, certificates; and the log files) looks for things that should
 * never be there. It greps every byte of every file for canary strings, as raw bytes and in the
 * encodings a careless program would write them in: UTF-8, UTF-16LE, hex (either case) and
 * base64 (at each of the three byte alignments, so a canary inside a longer base64 blob is found
 * too). It also reports file modes, for the storage-theft threat.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { StorageAccess } from '../types.js';

/** One file the operator can read. */
export interface OperatorFile {
  /** Path relative to the data folder, or the log file's path. */
  readonly name: string;
  readonly path: string;
  /** Permission bits (`mode & 0o777`). */
  readonly mode: number;
  readonly size: number;
}

/** Where a needle was found, and how it was written. */
export interface Finding {
  /** The label the caller gave the needle (never the needle itself: it may be a password). */
  readonly label: string;
  readonly file: string;
  readonly encoding: string;
}

/** Every regular file of the data folder (recursively) and every log file. */
export function operatorFiles(storage: StorageAccess): OperatorFile[] {
  const out: OperatorFile[] = [];
  const walk = (dir: string): void => {
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      return;
    }
    for (const name of names) {
      const path = join(dir, name);
      let st;
      try {
        st = statSync(path);
      } catch {
        continue; // removed meanwhile (a -shm file at checkpoint)
      }
      if (st.isDirectory()) walk(path);
      else if (st.isFile()) {
        out.push({
          name: relative(storage.dataDir, path),
          path,
          mode: st.mode & 0o777,
          size: st.size,
        });
      }
    }
  };
  walk(storage.dataDir);
  for (const path of storage.logFiles) {
    try {
      const st = statSync(path);
      if (st.isFile()) out.push({ name: path, path, mode: st.mode & 0o777, size: st.size });
    } catch {
      // A log file that does not exist (yet) holds nothing.
    }
  }
  return out;
}

/** The byte patterns under which `needle` would be recognisable, by encoding name. */
export function encodingsOf(needle: string): [string, Buffer][] {
  const utf8 = Buffer.from(needle, 'utf8');
  const out: [string, Buffer][] = [
    ['utf-8', utf8],
    ['utf-16le', Buffer.from(needle, 'utf16le')],
    ['hex', Buffer.from(utf8.toString('hex'), 'latin1')],
    ['HEX', Buffer.from(utf8.toString('hex').toUpperCase(), 'latin1')],
  ];
  // Base64 of the needle at byte offset 0, 1 and 2 of a longer blob: keep only the characters
  // that depend on the needle's bytes alone (whole 3-byte groups inside it).
  for (let offset = 0; offset < 3; offset++) {
    const lead = (3 - offset) % 3;
    const body = utf8.subarray(lead);
    const whole = body.subarray(0, body.length - (body.length % 3));
    if (whole.length >= 6) {
      out.push([`base64@${offset}`, Buffer.from(whole.toString('base64'), 'latin1')]);
      out.push([`base64url@${offset}`, Buffer.from(whole.toString('base64url'), 'latin1')]);
    }
  }
  return out;
}

/**
 * Greps every operator file for every needle in every encoding. Files are read whole (a test
 * deployment's files are small); a file that vanished is skipped.
 */
export function grepFiles(
  files: readonly OperatorFile[],
  needles: readonly { readonly label: string; readonly value: string }[],
): Finding[] {
  const patterns = needles.flatMap((n) =>
    encodingsOf(n.value).map(([encoding, bytes]) => ({ label: n.label, encoding, bytes })),
  );
  const findings: Finding[] = [];
  for (const f of files) {
    let bytes: Buffer;
    try {
      bytes = readFileSync(f.path);
    } catch {
      continue;
    }
    for (const p of patterns) {
      if (bytes.includes(p.bytes)) {
        findings.push({ label: p.label, file: f.name, encoding: p.encoding });
      }
    }
  }
  return findings;
}

/** The operator's whole search: every file, every needle. */
export function operatorGrep(
  storage: StorageAccess,
  needles: readonly { readonly label: string; readonly value: string }[],
): { files: OperatorFile[]; findings: Finding[] } {
  const files = operatorFiles(storage);
  return { files, findings: grepFiles(files, needles) };
}

/** One line per finding, for evidence (labels and file names only). */
export function describeFindings(findings: readonly Finding[]): string[] {
  return findings.map((f) => `${f.label} found in ${f.file} (${f.encoding})`);
}
