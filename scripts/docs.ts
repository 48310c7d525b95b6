/**
 * Writes the machine diagrams into the README and docs/machines.md between `<!-- machine:NAME -->`
 * markers. `npm run docs` after changing a machine; a unit test fails while either is out of date.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { machines, toMermaid, type MachineName } from '../src/tools/machineGraph.js';

export const readmePath = fileURLToPath(new URL('../README.md', import.meta.url));
export const machinesDocPath = fileURLToPath(new URL('../docs/machines.md', import.meta.url));

export function renderDiagrams(text: string): string {
  return text.replace(/<!-- machine:(\w+) -->[\s\S]*?<!-- \/machine:\1 -->/g, (block, name: string) => {
    if (!(name in machines)) return block;
    const diagram = toMermaid(machines[name as MachineName]);
    return `<!-- machine:${name} -->\n\n\`\`\`mermaid\n${diagram}\n\`\`\`\n\n<!-- /machine:${name} -->`;
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  for (const path of [readmePath, machinesDocPath]) writeFileSync(path, renderDiagrams(readFileSync(path, 'utf8')));
}
