/** Units as people write them in configs: "30s", "10m", "100ms", "1h"; "250W", "0.3kW". */

const DURATION = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|sec|m|min|h)?\s*$/;
const POWER = /^\s*(\d+(?:\.\d+)?)\s*(w|kw)?\s*$/i;
const SECONDS_PER_UNIT: Record<string, number> = { ms: 0.001, s: 1, sec: 1, m: 60, min: 60, h: 3600 };

/** Seconds, or undefined when the text is not a duration. A bare number means seconds. */
export function parseDuration(value: number | string): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value : undefined;
  const match = DURATION.exec(value);
  if (!match) return undefined;
  return Number(match[1]) * SECONDS_PER_UNIT[match[2] ?? 's'];
}

/** Watts, or undefined when the text is not a power. A bare number means watts. */
export function parsePower(value: number | string): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value > 0 ? value : undefined;
  const match = POWER.exec(value);
  if (!match) return undefined;
  const watts = Number(match[1]) * ((match[2] ?? 'w').toLowerCase() === 'kw' ? 1000 : 1);
  return watts > 0 ? watts : undefined;
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '–';
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 90) return `${seconds < 10 ? seconds.toFixed(1) : Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  const hours = seconds / 3600;
  return hours < 48 ? `${hours.toFixed(1)} h` : `${(hours / 24).toFixed(1)} d`;
}

export function formatEnergy(joules: number): string {
  if (!Number.isFinite(joules)) return '–';
  const kwh = joules / 3.6e6;
  if (kwh >= 1) return `${kwh.toFixed(kwh >= 100 ? 0 : 2)} kWh`;
  const wh = joules / 3600;
  if (wh >= 1) return `${wh.toFixed(wh >= 100 ? 0 : 1)} Wh`;
  return `${joules.toFixed(joules >= 10 ? 0 : 2)} J`;
}

export function formatPower(watts: number): string {
  if (!Number.isFinite(watts)) return '–';
  return watts >= 10000 ? `${(watts / 1000).toFixed(1)} kW` : `${Math.round(watts)} W`;
}

/** Two significant figures keeps J/token readable across 0.05 and 12. */
export function formatJoulesPerToken(j: number): string {
  if (!Number.isFinite(j)) return '–';
  return `${j >= 10 ? j.toFixed(0) : Number(j.toPrecision(2))} J/token`;
}

export function formatUsd(usd: number): string {
  if (!Number.isFinite(usd)) return '–';
  return usd >= 100 ? `$${usd.toFixed(0)}` : usd >= 0.01 ? `$${usd.toFixed(2)}` : `$${usd.toPrecision(1)}`;
}

const UNIT_WORDS: [RegExp, string][] = [
  [/^(milliseconds?|msecs?)$/i, 'ms'],
  [/^(seconds?|secs?)$/i, 's'],
  [/^(minutes?|mins?)$/i, 'm'],
  [/^(hours?|hrs?)$/i, 'h'],
  [/^(watts?)$/i, 'W'],
  [/^(kilowatts?)$/i, 'kW'],
];

/** "10 minutes" → "10m", "250 watts" → "250W": the spelling the config accepts, if the text has one. */
export function normalizeUnitText(text: string): string | undefined {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]+)\s*$/.exec(text);
  if (!match) return undefined;
  const unit = UNIT_WORDS.find(([pattern]) => pattern.test(match[2]))?.[1];
  return unit ? `${match[1]}${unit}` : undefined;
}
