import type { PointRequest } from './prediction';
import { buildStepModel, DEFAULT_HINT, type StepHint, type Topology } from './roofline';
import type { SimProfile } from './steprule';

export type { SimProfile } from './steprule';

/**
 * The simulated server's profile for a model on `gpuCount` GPUs, from the same roofline physics as
 * the prior. The batch-dependent parts (MoE weight traffic, utilisation) are linearised at
 * `hint.batch`: pass the point's concurrency so the simulated run reproduces predictPoint there.
 */
export function simProfileFor(
  req: Pick<PointRequest, 'model' | 'gpu' | 'gpuCount'> & Partial<Pick<PointRequest, 'gpusPerNode' | 'interNodeGBs'>>,
  hint: Partial<StepHint> = {},
): SimProfile {
  const topology: Topology = { gpusPerNode: req.gpusPerNode, interNodeGBs: req.interNodeGBs };
  return buildStepModel(req.model, req.gpu, req.gpuCount, { hint: { ...DEFAULT_HINT, ...hint }, topology }).sim;
}
