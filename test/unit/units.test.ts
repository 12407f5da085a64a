import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatDuration, formatEnergy, normalizeUnitText, parseDuration, parsePower } from '../../src/core/config/units';
import { didYouMean, editDistance } from '../../src/core/util/suggest';

describe('units', () => {
  it('parses durations as people write them', () => {
    assert.equal(parseDuration('30s'), 30);
    assert.equal(parseDuration('10m'), 600);
    assert.equal(parseDuration('10 min'), 600);
    assert.equal(parseDuration('100ms'), 0.1);
    assert.equal(parseDuration('1.5h'), 5400);
    assert.equal(parseDuration(12), 12);
    assert.equal(parseDuration('12'), 12);
    assert.equal(parseDuration('soon'), undefined);
    assert.equal(parseDuration(-1), undefined);
  });

  it('parses power as people write it', () => {
    assert.equal(parsePower('250W'), 250);
    assert.equal(parsePower('250 w'), 250);
    assert.equal(parsePower('0.3kW'), 300);
    assert.equal(parsePower(175), 175);
    assert.equal(parsePower('0W'), undefined);
    assert.equal(parsePower('lots'), undefined);
  });

  it('offers the accepted spelling for unit words', () => {
    assert.equal(normalizeUnitText('10 minutes'), '10m');
    assert.equal(normalizeUnitText('250 watts'), '250W');
    assert.equal(normalizeUnitText('2 hours'), '2h');
    assert.equal(normalizeUnitText('2 fortnights'), undefined);
  });

  it('formats for people', () => {
    assert.equal(formatDuration(0.25), '250 ms');
    assert.equal(formatDuration(41 * 60), '41 min');
    assert.equal(formatDuration(3 * 3600), '3.0 h');
    assert.equal(formatEnergy(0.9 * 3.6e6), '900 Wh');
    assert.equal(formatEnergy(3.6e6 * 2.5), '2.50 kWh');
  });

  it('suggests near misses only', () => {
    assert.equal(editDistance('sdt', 'std'), 1);
    assert.equal(didYouMean('concurency', ['concurrency', 'request_rate']), 'concurrency');
    assert.equal(didYouMean('Max-Tokens', ['max_tokens']), 'max_tokens');
    assert.equal(didYouMean('zzz', ['name', 'model']), undefined);
  });
});
