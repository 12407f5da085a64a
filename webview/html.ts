// Numbers and text made into HTML: pure, so a unit test can hold it to escaping everything.

export const fmt = (v: number | undefined | null, digits = 3) =>
  v === undefined || v === null || !Number.isFinite(v) ? '–' : Number(v.toPrecision(digits)).toLocaleString();
export const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** Header cells, one per (HTML) heading. */
export const ths = (heads: string[]) => heads.map((h) => `<th>${h}</th>`).join('');
/**
 * Data cells, one per value. Every value is text and is escaped here, whatever it holds: a point id, a
 * status or a basis string comes from files a workspace can hold, and must never become markup.
 */
export const tds = (values: (string | number)[]) => values.map((v) => `<td>${esc(String(v))}</td>`).join('');

