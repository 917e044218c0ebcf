/**
 * Schema versions of the SQLite service store and the ordered migrations between them.
 *
 * Table `impp_service_schema` holds one row per applied migration (version, name, time). Opening
 * runs every migration newer than the highest applied one, in order, each in its own IMMEDIATE
 * transaction together with its row, so a crash mid-migration leaves the previous version intact
 * and two processes cannot migrate at once. A database whose highest version is newer than the
 * code knows is refused (`ERR_STORAGE`): an older impp never writes to a schema it does not
 * understand, and nothing is ever migrated down.
 *
 * Rules for new migrations: append only (never edit a released one), number them 1, 2, 3, … with
 * no gaps, and keep each one a pure schema/data step with no dependency on application code.
 */
import type Database from 'better-sqlite3';
import { ImppError } from '../../../errors.js';

/** One schema step. */
export interface Migration {
  /** 1, 2, 3, … without gaps. */
  readonly version: number;
  /** Short description, stored with the version. */
  readonly name: string;
  /** Applies the step inside the migration's transaction (synchronous). */
  up(db: Database.Database): void;
}

/** Name of the version table (distinct from other impp stores that may share a file). */
export const SCHEMA_TABLE = 'impp_service_schema';

const V1 = `
CREATE TABLE devices (
  address      TEXT NOT NULL,
  device_id    TEXT NOT NULL,
  device       TEXT NOT NULL UNIQUE,
  identity_key BLOB NOT NULL CHECK (length(identity_key) = 32),
  enrolment    BLOB NOT NULL,
  created_at   INTEGER NOT NULL,
  revoked_at   INTEGER,
  PRIMARY KEY (address, device_id)
) STRICT;

CREATE TABLE device_lists (
  address   TEXT PRIMARY KEY NOT NULL,
  counter   INTEGER NOT NULL CHECK (counter >= 0),
  bytes     BLOB NOT NULL,
  stored_at INTEGER NOT NULL
) STRICT;

CREATE TABLE signed_prekeys (
  device      TEXT PRIMARY KEY NOT NULL REFERENCES devices (device) ON DELETE CASCADE,
  key_id      INTEGER NOT NULL CHECK (key_id BETWEEN 0 AND 4294967295),
  public_key  BLOB NOT NULL CHECK (length(public_key) = 32),
  signature   BLOB NOT NULL CHECK (length(signature) = 64),
  uploaded_at INTEGER NOT NULL
) STRICT;

CREATE TABLE one_time_prekeys (
  seq        INTEGER PRIMARY KEY,
  device     TEXT NOT NULL REFERENCES devices (device) ON DELETE CASCADE,
  key_id     INTEGER NOT NULL CHECK (key_id BETWEEN 0 AND 4294967295),
  public_key BLOB NOT NULL CHECK (length(public_key) = 32),
  UNIQUE (device, key_id)
) STRICT;
CREATE INDEX one_time_prekeys_take ON one_time_prekeys (device, seq);

-- AUTOINCREMENT: seq is never reused, so a client's resume cursor (after = seq) stays valid.
CREATE TABLE queue (
  seq         INTEGER PRIMARY KEY AUTOINCREMENT,
  device      TEXT NOT NULL REFERENCES devices (device) ON DELETE CASCADE,
  id          BLOB NOT NULL CHECK (length(id) BETWEEN 1 AND 64),
  kind        INTEGER NOT NULL CHECK (kind IN (1, 2, 3)),
  received_at INTEGER NOT NULL,
  size        INTEGER NOT NULL,
  bytes       BLOB NOT NULL CHECK (length(bytes) = size),
  UNIQUE (device, id)
) STRICT;
CREATE INDEX queue_by_device ON queue (device, seq);

-- Per-device usage kept by triggers, so a quota check is one primary-key lookup.
CREATE TABLE queue_usage (
  device TEXT PRIMARY KEY NOT NULL,
  count  INTEGER NOT NULL,
  bytes  INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE TRIGGER queue_usage_insert AFTER INSERT ON queue BEGIN
  INSERT INTO queue_usage (device, count, bytes) VALUES (NEW.device, 1, NEW.size)
    ON CONFLICT (device) DO UPDATE SET count = count + 1, bytes = bytes + NEW.size;
END;
CREATE TRIGGER queue_usage_delete AFTER DELETE ON queue BEGIN
  UPDATE queue_usage SET count = count - 1, bytes = bytes - OLD.size WHERE device = OLD.device;
END;

CREATE TABLE subscriptions (
  presentity TEXT NOT NULL,
  watcher    TEXT NOT NULL,
  state      TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'denied', 'revoked')),
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (presentity, watcher)
) STRICT, WITHOUT ROWID;
CREATE INDEX subscriptions_by_presentity ON subscriptions (presentity, state, watcher);
CREATE INDEX subscriptions_by_watcher ON subscriptions (watcher, state);

CREATE TABLE presence (
  presentity  TEXT PRIMARY KEY NOT NULL,
  version     INTEGER NOT NULL CHECK (version >= 0),
  bytes       BLOB NOT NULL,
  received_at INTEGER NOT NULL
) STRICT;

CREATE TABLE keylog_entries (
  log   TEXT NOT NULL,
  idx   INTEGER NOT NULL CHECK (idx >= 0),
  entry BLOB NOT NULL,
  PRIMARY KEY (log, idx)
) STRICT;
CREATE TABLE keylog_nodes (
  log   TEXT NOT NULL,
  level INTEGER NOT NULL CHECK (level >= 0),
  idx   INTEGER NOT NULL CHECK (idx >= 0),
  hash  BLOB NOT NULL,
  PRIMARY KEY (log, level, idx)
) STRICT, WITHOUT ROWID;

CREATE TABLE audit (
  seq       INTEGER PRIMARY KEY AUTOINCREMENT,
  at        INTEGER NOT NULL,
  kind      TEXT NOT NULL,
  principal TEXT,
  source    TEXT,
  outcome   TEXT NOT NULL CHECK (outcome IN ('success', 'failure', 'refused')),
  details   TEXT NOT NULL
) STRICT;
CREATE INDEX audit_by_kind ON audit (kind, seq);
CREATE INDEX audit_by_principal ON audit (principal, seq);
`;

// Federation durability (issue 7): per-peer outbound queues, per-peer retry state, and the ids
// received from each origin domain (duplicate suppression), pruned by age.
const V2 = `
CREATE TABLE fed_outbound (
  seq         INTEGER PRIMARY KEY AUTOINCREMENT,
  peer        TEXT NOT NULL,
  sender      TEXT NOT NULL,
  id          BLOB NOT NULL CHECK (length(id) = 16),
  kind        INTEGER NOT NULL CHECK (kind BETWEEN 0 AND 65535),
  enqueued_at INTEGER NOT NULL,
  attempts    INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
  size        INTEGER NOT NULL,
  body        BLOB NOT NULL CHECK (length(body) = size),
  UNIQUE (peer, id)
) STRICT;
CREATE INDEX fed_outbound_by_peer ON fed_outbound (peer, seq);
CREATE INDEX fed_outbound_by_age ON fed_outbound (enqueued_at);

CREATE TABLE fed_outbound_usage (
  peer  TEXT PRIMARY KEY NOT NULL,
  count INTEGER NOT NULL,
  bytes INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
CREATE TRIGGER fed_outbound_usage_insert AFTER INSERT ON fed_outbound BEGIN
  INSERT INTO fed_outbound_usage (peer, count, bytes) VALUES (NEW.peer, 1, NEW.size)
    ON CONFLICT (peer) DO UPDATE SET count = count + 1, bytes = bytes + NEW.size;
END;
CREATE TRIGGER fed_outbound_usage_delete AFTER DELETE ON fed_outbound BEGIN
  UPDATE fed_outbound_usage SET count = count - 1, bytes = bytes - OLD.size WHERE peer = OLD.peer;
END;

CREATE TABLE fed_peers (
  peer            TEXT PRIMARY KEY NOT NULL,
  attempts        INTEGER NOT NULL CHECK (attempts >= 0),
  next_attempt_at INTEGER NOT NULL,
  last_error      TEXT
) STRICT, WITHOUT ROWID;

CREATE TABLE fed_inbound_seen (
  origin  TEXT NOT NULL,
  id      BLOB NOT NULL CHECK (length(id) = 16),
  seen_at INTEGER NOT NULL,
  PRIMARY KEY (origin, id)
) STRICT, WITHOUT ROWID;
CREATE INDEX fed_inbound_seen_by_age ON fed_inbound_seen (seen_at);
`;

// Federation wiring (issue 7, docs/protocol.md Server-to-server §5.5): each queued object records
// the peer domain it arrived from (the stamp a recipient's client checks its sealed sender
// against, T45; NULL for an object of this domain), and the queue holds a fourth kind, 4, the
// delivery-failure notice (not an envelope). SQLite cannot alter a CHECK constraint, so the table
// is rebuilt: rows are copied with their seq, and the AUTOINCREMENT counter is carried over so a
// seq handed out before (and since acknowledged) is never handed out again. DROP TABLE removes the
// old table's triggers before its implicit delete, so queue_usage is left as it was: it counts
// the same rows, now in the new table. Nothing references the queue, so no foreign key breaks.
const V3 = `
CREATE TABLE queue_v3 (
  seq          INTEGER PRIMARY KEY AUTOINCREMENT,
  device       TEXT NOT NULL REFERENCES devices (device) ON DELETE CASCADE,
  id           BLOB NOT NULL CHECK (length(id) BETWEEN 1 AND 64),
  kind         INTEGER NOT NULL CHECK (kind IN (1, 2, 3, 4)),
  received_at  INTEGER NOT NULL,
  size         INTEGER NOT NULL,
  bytes        BLOB NOT NULL CHECK (length(bytes) = size),
  arrived_from TEXT CHECK (arrived_from IS NULL OR length(arrived_from) BETWEEN 1 AND 253),
  UNIQUE (device, id)
) STRICT;
INSERT INTO queue_v3 (seq, device, id, kind, received_at, size, bytes, arrived_from)
  SELECT seq, device, id, kind, received_at, size, bytes, NULL FROM queue ORDER BY seq;
CREATE TEMP TABLE queue_v3_counter AS
  SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'queue'), 0) AS seq;
DROP TABLE queue;
ALTER TABLE queue_v3 RENAME TO queue;
DELETE FROM sqlite_sequence WHERE name = 'queue';
INSERT INTO sqlite_sequence (name, seq)
  SELECT 'queue', max((SELECT seq FROM queue_v3_counter), coalesce((SELECT max(seq) FROM queue), 0));
DROP TABLE temp.queue_v3_counter;
CREATE INDEX queue_by_device ON queue (device, seq);
CREATE TRIGGER queue_usage_insert AFTER INSERT ON queue BEGIN
  INSERT INTO queue_usage (device, count, bytes) VALUES (NEW.device, 1, NEW.size)
    ON CONFLICT (device) DO UPDATE SET count = count + 1, bytes = bytes + NEW.size;
END;
CREATE TRIGGER queue_usage_delete AFTER DELETE ON queue BEGIN
  UPDATE queue_usage SET count = count - 1, bytes = bytes - OLD.size WHERE device = OLD.device;
END;
`;

/** The migrations this code knows, oldest first. */
export const SERVICE_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'devices, device lists, prekeys, queue, subscriptions, presence, key log, audit',
    up(db) {
      db.exec(V1);
    },
  },
  {
    version: 2,
    name: 'federation outbound queues, peer retry state, inbound ids seen',
    up(db) {
      db.exec(V2);
    },
  },
  {
    version: 3,
    name: 'queue: arrived_from stamp, delivery-failure notice kind',
    up(db) {
      db.exec(V3);
    },
  },
];

/** Highest schema version this code knows. */
export const SERVICE_SCHEMA_VERSION = SERVICE_MIGRATIONS.length;

/**
 * Highest applied version, 0 for a fresh database.
 *
 * @example
 * ```ts
 * if (schemaVersion(db) < SERVICE_SCHEMA_VERSION) migrate(db);
 * ```
 */
export function schemaVersion(db: Database.Database): number {
  const row = db
    .prepare<[], { v: number | null }>(`SELECT max(version) AS v FROM ${SCHEMA_TABLE}`)
    .get();
  return row?.v ?? 0;
}

/**
 * Brings the database to the newest schema in `migrations`; returns the version reached.
 * Throws `ERR_STORAGE` if the database is newer than the code.
 *
 * @example
 * ```ts
 * const version = migrate(db); // SERVICE_SCHEMA_VERSION
 * ```
 */
export function migrate(
  db: Database.Database,
  migrations: readonly Migration[] = SERVICE_MIGRATIONS,
): number {
  migrations.forEach((m, i) => {
    if (m.version !== i + 1) {
      throw new ImppError('ERR_STORAGE', 'migrations must be numbered 1, 2, 3, … without gaps');
    }
  });
  const latest = migrations.length;
  db.exec(`CREATE TABLE IF NOT EXISTS ${SCHEMA_TABLE} (
    version    INTEGER PRIMARY KEY NOT NULL,
    name       TEXT NOT NULL,
    applied_at INTEGER NOT NULL
  ) STRICT`);
  const refuseNewer = (found: number): void => {
    if (found > latest) {
      throw new ImppError(
        'ERR_STORAGE',
        `database schema version ${found} is newer than this impp knows (${latest}): upgrade impp`,
      );
    }
  };
  refuseNewer(schemaVersion(db));
  const record = db.prepare(
    `INSERT INTO ${SCHEMA_TABLE} (version, name, applied_at) VALUES (?, ?, ?)`,
  );
  for (const m of migrations) {
    const step = db.transaction(() => {
      // Re-read inside the write lock: another process may have migrated meanwhile.
      const current = schemaVersion(db);
      refuseNewer(current);
      if (current >= m.version) return;
      m.up(db);
      record.run(m.version, m.name, Date.now());
    });
    step.immediate();
  }
  return schemaVersion(db);
}
