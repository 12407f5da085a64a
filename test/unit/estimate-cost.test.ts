import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_COST_SETTINGS, costOf, usdPerMillionTokens } from '../../src/core/estimate';

const close = (a: number, b: number) => Math.abs(a - b) < 1e-9 * Math.max(1, Math.abs(b));

describe('energy to money and CO2', () => {
  it('converts joules through PUE into dollars and grams with the given settings', () => {
    // 36 MJ = 10 kWh on the GPUs; PUE 1.5 makes 15 kWh at the meter.
    const c = costOf(36e6, 7200, 4, { usdPerKWh: 0.2, gCO2PerKWh: 400, pue: 1.5, usdPerGpuHour: 2.5 });
    assert.ok(close(c.gpu_kwh, 10));
    assert.ok(close(c.facility_kwh, 15));
    assert.ok(close(c.electricity_usd, 3));
    assert.ok(close(c.co2_g, 6000));
    assert.ok(close(c.gpu_hours, 8));
    assert.ok(close(c.gpu_usd!, 20));
    assert.ok(close(c.total_usd, 23));
    assert.ok(close(usdPerMillionTokens(c, 1e6), 23));
  });

  it('uses documented defaults and leaves GPU rental out until a price is set', () => {
    const c = costOf(3.6e6, 3600, 1);
    assert.ok(close(c.facility_kwh, DEFAULT_COST_SETTINGS.pue));
    assert.ok(close(c.electricity_usd, DEFAULT_COST_SETTINGS.pue * DEFAULT_COST_SETTINGS.usdPerKWh));
    assert.equal(c.gpu_usd, null);
    assert.equal(c.total_usd, c.electricity_usd);
  });

  it('rejects settings that make no sense', () => {
    assert.throws(() => costOf(1, 1, 1, { pue: 0.8 }), /PUE .* at least 1/);
    assert.throws(() => costOf(1, 1, 1, { usdPerKWh: -1 }), /usdPerKWh must be a number ≥ 0/);
  });
});
