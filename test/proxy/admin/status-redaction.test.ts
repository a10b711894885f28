import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closedPort } from '../../../harness/ports.js';
import { twoSlotsAndEdge, type SlotsAndEdge } from '../../support/edge.js';

/**
 * A slot URL may carry a secret in its query (`?token=`, under any name) as
 * well as in its user part: /admin/status, the health gate's answers and the
 * log lines show the URL with every query value and the password hidden.
 */
describe('slot URLs with secrets', () => {
  const TOKEN = 'tok-5ecret-in-query';
  const KEY = 'k3y-in-another-param';
  const PASSWORD = 'pa55word-in-userinfo';
  let t: SlotsAndEdge;
  let greenPort: number;

  beforeAll(async () => {
    greenPort = await closedPort();
    t = await twoSlotsAndEdge({
      urls: {
        blue: (blue) => `${blue.url}/?token=${TOKEN}`,
        // Nothing listens there: its health errors name the URL.
        green: `http://ops:${PASSWORD}@127.0.0.1:${greenPort}/?access_key=${KEY}&region=eu`,
      },
      healthPollIntervalMs: 200,
    });
  });
  afterAll(() => t?.close());

  function expectNoSecret(text: string): void {
    for (const secret of [TOKEN, KEY, PASSWORD]) expect(text).not.toContain(secret);
  }

  it('GET /admin/status shows every slot URL without its query values or password', async () => {
    const answer = await t.admin('GET', '/admin/status');
    expect(answer.status).toBe(200);
    expectNoSecret(answer.text);
    expect(answer.body).toMatchObject({
      slots: {
        blue: { url: `${t.blue.url}/?token=***` },
        green: {
          url: `http://ops:***@127.0.0.1:${greenPort}/?access_key=***&region=***`,
          healthy: false,
          health_error: expect.stringContaining(
            `GET http://ops:***@127.0.0.1:${greenPort}/?access_key=***&region=***`,
          ),
        },
      },
    });
  });

  it("the health gate's 409 names the URL without secrets", async () => {
    const answer = await t.admin('POST', '/admin/switch?slot=green');
    expect(answer.status).toBe(409);
    expect(answer.body).toMatchObject({
      error: 'target_unhealthy',
      health: { url: expect.stringContaining('access_key=***') },
    });
    expectNoSecret(answer.text);
  });

  it('no log line carries a secret of a slot URL', async () => {
    await t.logs.waitFor((line) => line.msg === 'slot unhealthy');
    expect(t.logs.find((line) => line.msg === 'switch not done')).toBeDefined();
    expectNoSecret(t.logs.dump());
  });
});
