import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  HISTORY_LIMIT,
  type DeploymentRecord,
  type DeploymentStore,
} from '../../deploy/records/deployment-record.js';
import {
  createFileDeploymentStore,
  createRedisDeploymentStore,
} from '../../deploy/records/deployment-store.js';
import { tempDir } from '../support/deploy-fixtures.js';
import { RedisProcess } from '../../harness/redis-process.js';

let redisServer: RedisProcess;
let redis: Redis;
const dir = tempDir('records');

beforeAll(async () => {
  redisServer = await RedisProcess.start();
  redis = new Redis(redisServer.url);
});

afterAll(async () => {
  redis?.disconnect();
  await redisServer?.stop();
  dir.cleanup();
});

function record(n: number, result: DeploymentRecord['result'] = 'deployed'): DeploymentRecord {
  const started = new Date(Date.UTC(2030, 0, 1, 0, 0, n)).toISOString();
  return {
    id: `id-${n}`,
    version: `1.0.${n}`,
    git_commit: 'abc',
    artifact: '/builds/x',
    runner: 'local',
    from_slot: 'blue',
    to_slot: 'green',
    started_at: started,
    finished_at: result === 'in_progress' ? null : started,
    duration_ms: result === 'in_progress' ? null : 1000,
    result,
    reason: null,
    rollback_reason: null,
    actor: 'deploy:test',
    steps: [],
  };
}

function contract(name: string, make: () => DeploymentStore) {
  describe(`${name} deployment store`, () => {
    it('replaces a record by id (in progress, then finished) and lists newest first', async () => {
      const store = make();
      await store.save(record(1));
      await store.save(record(2, 'in_progress'));
      await store.save(record(2, 'rolled_back'));
      const listed = await store.list(10);
      expect(listed.map((r) => [r.id, r.result])).toEqual([
        ['id-2', 'rolled_back'],
        ['id-1', 'deployed'],
      ]);
      expect(await store.list(1)).toHaveLength(1);
    });

    it(`keeps the newest ${HISTORY_LIMIT}`, async () => {
      const store = make();
      for (let n = 0; n < HISTORY_LIMIT + 5; n++) await store.save(record(n));
      const listed = await store.list(1000);
      expect(listed).toHaveLength(HISTORY_LIMIT);
      expect(listed[0]!.id).toBe(`id-${HISTORY_LIMIT + 4}`);
      expect(listed.at(-1)!.id).toBe('id-5');
    });
  });
}

let fileCount = 0;
contract('file', () => createFileDeploymentStore(join(dir.path, `history-${fileCount++}.json`)));
let prefixCount = 0;
contract('Redis', () => createRedisDeploymentStore(redis, `test${prefixCount++}:`));

it('the history file is private and whole JSON', async () => {
  const path = join(dir.path, 'private.json');
  await createFileDeploymentStore(path).save(record(1));
  expect(statSync(path).mode & 0o777).toBe(0o600);
  expect(JSON.parse(readFileSync(path, 'utf8'))).toHaveLength(1);
});
