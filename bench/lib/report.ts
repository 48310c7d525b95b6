/** Small statistics and markdown for the results files. */

/** The `q` quantile (0–1) of already sorted values, nearest rank. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN;
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const middle = Math.floor(sorted.length / 2);
  const upper = sorted[middle] ?? Number.NaN;
  return sorted.length % 2 === 1 ? upper : ((sorted[middle - 1] ?? upper) + upper) / 2;
}

/** A fixed number of decimals, thousands grouped. */
export function fmt(value: number, decimals = 0): string {
  if (!Number.isFinite(value)) return 'n/a';
  return value.toLocaleString('en-US', { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
}

export const ratio = (value: number) => (Number.isFinite(value) ? `${value.toFixed(2)}×` : 'n/a');

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
}

export function renderSection(section: Section): string {
  const notes = section.notes?.length ? `\n\n${section.notes.map((note) => `- ${note}`).join('\n')}` : '';
  return `## ${section.title}\n\n${section.method}\n\n${section.table}${notes}\n`;
}
