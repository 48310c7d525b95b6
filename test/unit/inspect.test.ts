import { describe, expect, it } from 'vitest';
import { scrub } from '../../src/tools/inspect.js';

const jwt = 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl';

describe('scrub', () => {
  it('redacts credentials and addresses by key, at any depth', () => {
    const scrubbed = scrub({
      token: 'anything',
      resumeToken: 'abc',
      params: { resume: 'def', sessionId: 's', cookie: 'connect.sid=x', Authorization: 'Bearer y' },
      peer: { ip: 'somewhere', remoteAddress: 'there', userAgent: 'Mozilla' },
      list: [{ jwt: 'z' }],
    });
    expect(JSON.stringify(scrubbed)).not.toMatch(/anything|abc|def|connect\.sid|Bearer|somewhere|there|Mozilla|"z"/);
  });

  it('redacts JWTs and IP addresses by shape, wherever they are', () => {
    const scrubbed = scrub({
      note: jwt,
      where: ['10.1.2.3', '::1', '::ffff:127.0.0.1', 'fe80::1', '2001:db8:0:0:0:0:2:1'],
    });
    expect(JSON.stringify(scrubbed)).not.toMatch(/eyJ|10\.1\.2\.3|::1|127\.0\.0\.1|fe80|2001/);
  });

  it('keeps what is not secret: ids, states, game ids with colons, numbers', () => {
    const value = {
      connectionId: 'd2f1c1a0-5b7e-4c4e-9a51-1f0b7c1d2e3f',
      userId: 'alice',
      gameId: 'chess:42',
      other: 'a:b:c',
      state: 'inGame',
      lastSeen: 1_700_000_000_000,
      socket: true,
      gone: null,
    };
    expect(scrub(value)).toEqual(value);
  });
});
