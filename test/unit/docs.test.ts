import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { machinesDocPath, readmePath, renderDiagrams } from '../../scripts/docs.js';
import { configFields } from '../../src/config.js';
import { machines } from '../../src/tools/machineGraph.js';

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

describe('docs/machines.md', () => {
  const doc = readFileSync(machinesDocPath, 'utf8');

  it('has every machine, and every state of it, with its diagram as generated', () => {
    for (const [name, machine] of Object.entries(machines)) {
      expect(doc).toContain(`<!-- machine:${name} -->`);
      for (const state of Object.keys(machine.root.states)) expect(doc).toContain(`\`${state}\``);
    }
    expect(renderDiagrams(doc)).toBe(doc);
  });
});
