/** CSV as Python's csv module and pandas write it: quoted fields, doubled quotes, CRLF or LF. */
import { ImportError } from './types';

/** Rows of cells; a quote left open is an error naming the line it opened on. */
export function csvRows(text: string, file: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let cell = '';
  let quoted = false;
  let quoteLine = 0;
  let line = 1;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        cell += '"';
        i++;
      } else if (c === '"') quoted = false;
      else {
        if (c === '\n') line++;
        cell += c;
      }
    } else if (c === '"') {
      quoted = true;
      quoteLine = line;
    } else if (c === ',') {
      row.push(cell);
      cell = '';
    } else if (c === '\n' || c === '\r') {
      if (c === '\r' && text[i + 1] === '\n') i++;
      row.push(cell);
      rows.push(row);
      row = [];
      cell = '';
      line++;
    } else cell += c;
  }
  if (quoted) throw new ImportError(file, undefined, `a quoted field opened on line ${quoteLine} never closes (the file ends early: truncated?)`);
  if (cell !== '' || row.length) {
    row.push(cell);
    rows.push(row);
  }
  return rows;
}

/** Records keyed by the header row; a row with another number of cells is an error naming its line. */
export function parseCsv(text: string, file: string): Record<string, string>[] {
  const rows = csvRows(text, file).filter((r) => r.some((c) => c !== ''));
  if (rows.length < 2) throw new ImportError(file, undefined, 'a CSV without data rows');
  const [header, ...data] = rows;
  return data.map((cells, i) => {
    if (cells.length !== header.length) throw new ImportError(file, `row ${i + 2}`, `has ${cells.length} cells, the header ${header.length} (the file ends early: truncated?)`);
    return Object.fromEntries(header.map((h, k) => [h, cells[k]]));
  });
}
