import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { readmePath, renderDiagrams } from '../../scripts/docs.js';
import { configFields } from '../../src/config.js';
import { machines } from '../../src/machineGraph.js';

const readme = readFileSync(readmePath, 'utf8');

describe('README', () => {
  it('opens with the two commands', () => {
    const firstBlock = readme.split('```')[1] ?? '';
    expect(firstBlock).toContain('npm install && npm start');
    expect(firstBlock).toContain('npm test');
  });

  it('has the diagram of every machine, as generated from the machines (run `npm run docs`)', () => {
    for (const name of Object.keys(machines)) expect(readme).toContain(`<!-- machine:${name} -->`);
    expect(renderDiagrams(readme)).toBe(readme);
  });

  it('documents every environment variable', () => {
    for (const field of Object.values(configFields)) expect(readme).toContain(`\`${field.env}\``);
  });
});
