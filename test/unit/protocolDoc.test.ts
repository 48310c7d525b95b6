import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { AnyTRPCProcedure, TRPCRouterRecord } from '@trpc/server';
import { describe, expect, it } from 'vitest';
import { configFields } from '../../src/config.js';
import { createPresenceServer } from '../../src/server.js';
import { PresenceError, presenceErrorCodes, toTRPCError } from '../../src/errors.js';
import { CloseCode, endReasons, leaveReasons } from '../../src/protocol.js';
import { appRouter } from '../../src/router/index.js';

const doc = readFileSync(fileURLToPath(new URL('../../docs/protocol.md', import.meta.url)), 'utf8');
const readme = readFileSync(fileURLToPath(new URL('../../README.md', import.meta.url)), 'utf8');

/** Every procedure of a router record, by its dotted path, walking the sub-routers' records. */
function proceduresOf(record: TRPCRouterRecord, prefix = ''): [string, AnyTRPCProcedure][] {
  return Object.entries(record).flatMap(([key, value]) =>
    typeof value === 'function' ? [[`${prefix}${key}`, value] as const] : proceduresOf(value, `${prefix}${key}.`),
  );
}

/** A default as the table shows it: numbers and strings as they are. */
const shown = (value: unknown) =>
  typeof value === 'number' || typeof value === 'string' ? `${value}` : JSON.stringify(value);

/** The cells of every table row of `doc` whose first cell is `first` (backticks included). */
function rowsStartingWith(first: string): string[][] {
  return doc
    .split('\n')
    .filter((line) => line.startsWith('|'))
    .map((line) =>
      line
        .slice(1, -1)
        .split(/(?<!\\)\|/)
        .map((cell) => cell.trim()),
    )
    .filter((cells) => cells[0] === first);
}

/** The one row whose first cell is `first`: a second row would say two things of it. */
function rowOf(first: string): string[] {
  const rows = rowsStartingWith(first);
  expect(rows, `one row for ${first} in docs/protocol.md`).toHaveLength(1);
  return rows[0] ?? [];
}

describe('docs/protocol.md documents what the server implements', () => {
  it('every procedure of the router, with its kind', () => {
    const procedures = proceduresOf(appRouter._def.record);
    expect(procedures.length).toBeGreaterThan(0);
    for (const [path, procedure] of procedures) {
      const [, kind] = rowOf(`\`${path}\``);
      expect(kind, path).toBe(procedure._def.type);
    }
  });

  it('no procedure the router does not have', () => {
    const paths = new Set(proceduresOf(appRouter._def.record).map(([path]) => path));
    const documented = doc
      .split('\n')
      .filter((line) => line.startsWith('| `'))
      .map((line) => /^\| `([a-z]+\.[A-Za-z.]+)`\s+\| (query|mutation|subscription) /.exec(line)?.[1])
      .filter((path) => path !== undefined);
    expect(documented.length).toBe(paths.size);
    for (const path of documented) expect(paths.has(path), path).toBe(true);
  });

  it('every close code, under its name', () => {
    for (const [name, code] of Object.entries(CloseCode)) {
      const [, documentedName] = rowOf(String(code));
      expect(documentedName, String(code)).toBe(`\`${name}\``);
    }
  });

  it('every error code, with the tRPC code it goes out as', () => {
    for (const code of presenceErrorCodes) {
      const [, trpcCode] = rowOf(`\`${code}\``);
      expect(trpcCode, code).toBe(`\`${toTRPCError(new PresenceError(code, 'x')).code}\``);
    }
  });

  it('every option, under its variable and its name, with its default', () => {
    for (const [option, field] of Object.entries(configFields)) {
      const [, name, documentedDefault = ''] = rowOf(`\`${field.env}\``);
      expect(name, field.env).toBe(`\`${option}\``);
      const parsed: unknown = field.schema.safeParse(undefined).data;
      if (parsed !== undefined) expect(documentedDefault, field.env).toBe(`\`${shown(parsed)}\``);
    }
  });

  it('every end reason and leave reason', () => {
    for (const reason of [...endReasons, ...leaveReasons]) expect(doc).toContain(`\`${reason}\``);
  });

  it('the HTTP endpoints, each answered by a real server, and no other', async () => {
    const endpoints = doc
      .split('\n')
      .map((line) => /^\| `GET (\/[^`]*)`/.exec(line)?.[1])
      .filter((path) => path !== undefined);
    expect(endpoints.length).toBeGreaterThan(0);
    const server = createPresenceServer({ port: 0, logLevel: 'silent' });
    try {
      const { url } = await server.listen();
      for (const path of endpoints) expect((await fetch(`${url}${path}`)).status, path).toBe(200);
      expect((await fetch(`${url}/health/other`)).status).toBe(404);
    } finally {
      await server.close();
    }
  });

  it('is linked from the README', () => {
    expect(readme).toContain('(docs/protocol.md)');
  });
});
