/**
 * JSON as Python's json module writes it: `Infinity`, `-Infinity` and `NaN` are allowed there (allow_nan, the
 * default), and real config.json files carry them (Nemotron-H's `time_step_limit: [0.0, Infinity]`). Outside
 * strings, those tokens become numbers JSON.parse reads: 1e999 (±Infinity), and null for NaN.
 */
export function parseLenientJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (strict) {
    const fixed = replaceNonFinite(text);
    if (fixed === text) throw strict;
    return JSON.parse(fixed);
  }
}

function replaceNonFinite(text: string): string {
  let out = '';
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === '"') {
      // Copy the string whole, escapes included: a token inside one is text, not a number.
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      out += text.slice(i, j + 1);
      i = j + 1;
    } else if (text.startsWith('Infinity', i)) {
      out += '1e999';
      i += 8;
    } else if (text.startsWith('NaN', i)) {
      out += 'null';
      i += 3;
    } else {
      out += c;
      i++;
    }
  }
  return out;
}
