import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Http01Challenges } from '../../../proxy/tls/challenge-responder.js';
import { ChallengeListener } from '../../support/acme-fixture.js';
import { httpRequest } from '../../../harness/http-client.js';

const TOKEN = 'LoqXcYV8q5ONbJQxbmR7SCTNo3tiAXDfowyjxAjEuX0';
const KEY_AUTHORIZATION = `${TOKEN}.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI`;

describe('HTTP-01 challenge responder', () => {
  let clock = 1_000_000;
  const challenges = new Http01Challenges(() => clock);
  let listener: ChallengeListener;

  beforeAll(async () => {
    listener = await ChallengeListener.start();
    listener.responders.push(challenges);
    challenges.add(TOKEN, KEY_AUTHORIZATION, 60_000);
  });

  afterAll(() => listener.close());

  const url = (path: string) => `http://127.0.0.1:${listener.port}${path}`;

  it('answers its own pending token with the key authorization as text/plain', async () => {
    const answer = await httpRequest(url(`/.well-known/acme-challenge/${TOKEN}`));
    expect(answer.status).toBe(200);
    expect(answer.headers['content-type']).toBe('text/plain');
    expect(answer.headers['cache-control']).toBe('no-store');
    expect(answer.body).toBe(KEY_AUTHORIZATION);
    const head = await httpRequest(url(`/.well-known/acme-challenge/${TOKEN}`), { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers['content-length']).toBe(String(KEY_AUTHORIZATION.length));
    expect(head.body).toBe('');
  });

  it('sends every other challenge path to the slot: unknown tokens, other methods, suffixes, queries', async () => {
    listener.forwarded.splice(0);
    const paths = [
      '/.well-known/acme-challenge/someone-elses-token',
      `/.well-known/acme-challenge/${TOKEN}/extra`,
      `/.well-known/acme-challenge/${TOKEN}?x=1`,
      `/.well-known/acme-challenge/${TOKEN.toLowerCase()}`,
      '/.well-known/acme-challenge/',
      `/.WELL-KNOWN/acme-challenge/${TOKEN}`,
      `/prefix/.well-known/acme-challenge/${TOKEN}`,
    ];
    for (const path of paths) {
      const answer = await httpRequest(url(path));
      expect({ path, status: answer.status, body: answer.body }).toEqual({
        path,
        status: 404,
        body: 'from the slot',
      });
    }
    const post = await httpRequest(url(`/.well-known/acme-challenge/${TOKEN}`), {
      method: 'POST',
      body: '{}',
    });
    expect(post.status).toBe(404);
    expect(listener.forwarded).toEqual([...paths, `/.well-known/acme-challenge/${TOKEN}`]);
  });

  it('stops answering a token once withdrawn or expired', async () => {
    const other = 'expiring_token-1';
    challenges.add(other, `${other}.thumb`, 5_000);
    expect(challenges.respond(`/.well-known/acme-challenge/${other}`)).toBe(`${other}.thumb`);
    clock += 5_000;
    expect(challenges.respond(`/.well-known/acme-challenge/${other}`)).toBeUndefined();
    expect((await httpRequest(url(`/.well-known/acme-challenge/${other}`))).status).toBe(404);

    challenges.remove(TOKEN);
    expect((await httpRequest(url(`/.well-known/acme-challenge/${TOKEN}`))).status).toBe(404);
    expect(challenges.size).toBe(0);
  });

  it('refuses to hold something that is not an ACME token', () => {
    for (const bad of ['', '../etc/passwd', 'a/b', 'tok en', 'tok%2Fen']) {
      expect(() => challenges.add(bad, 'x', 1000)).toThrow(
        `not an ACME token: ${JSON.stringify(bad)}`,
      );
    }
  });
});
