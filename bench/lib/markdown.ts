/** A verdict next to a figure: met, missed, or informational (no target). */
export type Verdict = 'met' | 'missed' | '—';

export const verdict = (met: boolean): Verdict => (met ? 'met' : 'missed');

/** A GitHub-flavoured markdown table; every cell is already text. */
export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]) => `| ${cells.map((cell) => cell.replaceAll('|', '\\|')).join(' | ')} |`;
  return [line(headers), line(headers.map(() => '---')), ...rows.map(line)].join('\n');
}

/** One scenario's part of the report. */
export interface Section {
  title: string;
  /** What was measured and how, in a sentence or two. */
  method: string;
  table: string;
  /** Remarks under the table (noise, caveats). */
  notes?: string[];
  /** Every target of this scenario, for the summary. */
  targets: { name: string; verdict: Verdict }[];
}

export function renderSection(section: Section): string {
  const notes = section.notes?.length ? `\n\n${section.notes.map((note) => `- ${note}`).join('\n')}` : '';
  return `## ${section.title}\n\n${section.method}\n\n${section.table}${notes}\n`;
}
