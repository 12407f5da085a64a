import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { modelWithCsvColumns } from '../../src/cli/calibrate';
import { mlEnergyMeasurements, parseCsv, parseMlEnergyCsv } from '../../src/core/estimate/published';

// A row of a model outside the catalog, with the MoE columns a calibration CSV may carry (Mixtral 8x7B's shape).
const CSV = [
  'model,hf_id,params_b,layers,hidden,heads,kv_heads,intermediate,dtype,gpu,n_gpus,batch,j_per_output_token,experts,experts_per_token,active_params_b,head_dim',
  'MyMoE,org/my-moe,46.7,32,4096,32,8,14336,bf16,H100-SXM-80GB,2,64,0.5,8,2,12.9,128',
].join('\n');

describe('calibrate --from-csv keeps MoE columns', () => {
  it('the dense reader alone drops them', () => {
    const [m] = mlEnergyMeasurements(parseMlEnergyCsv(CSV));
    assert.equal(typeof m!.model === 'string' ? undefined : m!.model.experts, undefined);
  });

  it('modelWithCsvColumns applies experts, experts_per_token, active_params_b and head_dim', () => {
    const [m] = mlEnergyMeasurements(parseMlEnergyCsv(CSV));
    const model = modelWithCsvColumns(m!.model as Exclude<typeof m.model, string>, parseCsv(CSV)[0]!, 2);
    assert.equal(model.experts, 8);
    assert.equal(model.expertsPerToken, 2);
    assert.equal(model.activeParamsB, 12.9);
    assert.equal(model.headDim, 128);
    assert.equal(model.paramsB, 46.7);
  });

  it('names the bad cell', () => {
    const [m] = mlEnergyMeasurements(parseMlEnergyCsv(CSV));
    assert.throws(() => modelWithCsvColumns(m!.model as Exclude<typeof m.model, string>, { experts: 'many' }, 7), /row 7: experts/);
  });
});
