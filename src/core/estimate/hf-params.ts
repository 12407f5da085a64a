/**
 * Parameter counts from a model's shape, tensor by tensor as the transformers modeling code declares
 * them: embeddings, attention (MLA's low-rank projections, q/k norms, biases), dense and expert MLPs
 * with routers and shared experts, norms, and the untied output head. Vision towers are not counted.
 */
import type { ModelShape } from './catalog';

/** What the count needs beyond ModelShape: details that do not change the estimator's physics. */
export interface ArchDetail {
  modelType: string;
  /** attention_bias: q, k, v and o biases; 'qkv': q, k, v only (Qwen2). */
  attentionBias: boolean | 'qkv';
  /** Per-head RMSNorm on q and k (Qwen3, Gemma 3, OLMo 2). */
  qkNorm: boolean;
  /** Hidden-width norm vectors per decoder layer (2; Gemma 2/3 have 4: pre and post of each block). */
  norms: number;
  /** gate, up and down (SwiGLU/GeGLU); false: fc1 and fc2. */
  gatedMlp: boolean;
  mlpBias: boolean;
  /** FFN width of the layers without experts. */
  denseIntermediate: number;
  /** Decoder layers whose MLP is a mixture of experts. */
  moeLayers: number;
  /** Qwen3-Next's Gated DeltaNet layers, which replace attention in `layers` of the decoder layers. */
  linear?: { layers: number; keyDim: number; valueDim: number; valueHeads: number; keyHeadDim: number; valueHeadDim: number; convKernel: number };
  /** Qwen3-Next's full attention projects a sigmoid output gate with the query (q_proj twice as wide). */
  gatedQuery: boolean;
  /** Nemotron-H: each decoder block is one mixer (hybrid_override_pattern), Mamba-2, attention, MLP or MoE, with one norm. */
  hybrid?: HybridBlocks;
}

/** The blocks of hybrid_override_pattern (M Mamba-2, * attention, - MLP, E MoE) and the Mamba-2 mixer's widths. */
export interface HybridBlocks {
  mamba: number;
  attention: number;
  mlp: number;
  moe: number;
  mamba2: { heads: number; headDim: number; state: number; groups: number; convKernel: number; convBias: boolean };
}

export interface ParamCounts {
  total: number;
  /** Per token: shared weights plus the chosen experts (equal to total for dense models). */
  active: number;
}

/** Routers with a bias (gpt-oss) or a per-expert score-correction bias (DeepSeek-V3's noaux_tc). */
const ROUTER_BIAS = new Set(['gpt_oss', 'deepseek_v3', 'kimi_k2']);
/** Families with a shared expert behind a scalar sigmoid gate (hidden → 1). */
const SHARED_EXPERT_GATE = new Set(['qwen2_moe', 'qwen3_next']);

export function countParams(m: ModelShape, d: ArchDetail): ParamCounts {
  if (d.hybrid) return hybridParams(m, d, d.hybrid);
  const h = m.hidden;
  const hd = m.headDim ?? h / m.heads;
  const linearLayers = d.linear?.layers ?? 0;
  const attentionLayers = m.layers - linearLayers;

  const perAttention = m.mla ? mlaParams(m) : standardAttention(m, d, hd);
  const perLinear = d.linear ? gatedDeltaNet(h, d.linear) : 0;

  const mlp = (width: number, bias = d.mlpBias) => (d.gatedMlp ? 3 : 2) * h * width + (bias ? (d.gatedMlp ? 2 : 1) * width + h : 0);
  const denseLayers = m.layers - d.moeLayers;
  let expertTotal = 0;
  let expertActive = 0;
  if (d.moeLayers > 0 && m.experts && m.expertsPerToken) {
    const expert = mlp(m.moe?.expertIntermediate ?? m.intermediate ?? 0, d.mlpBias || d.modelType === 'gpt_oss');
    const router = h * m.experts + (ROUTER_BIAS.has(d.modelType) ? m.experts : 0);
    const sharedWidth = m.moe?.sharedExpertIntermediate ?? 0;
    const shared = sharedWidth ? mlp(sharedWidth) + (SHARED_EXPERT_GATE.has(d.modelType) ? h : 0) : 0;
    expertTotal = d.moeLayers * (router + shared + m.experts * expert);
    expertActive = d.moeLayers * (router + shared + m.expertsPerToken * expert);
  }
  const dense = denseLayers * mlp(d.denseIntermediate);

  const norms = m.layers * d.norms * h + h;
  const embedding = (m.vocab ?? 0) * h;
  const head = m.tiedEmbeddings === false ? embedding : 0;
  const shared = attentionLayers * perAttention + linearLayers * perLinear + dense + norms + embedding + head;
  return { total: shared + expertTotal, active: shared + expertActive };
}

function standardAttention(m: ModelShape, d: ArchDetail, hd: number): number {
  const h = m.hidden;
  const qOut = m.heads * hd * (d.gatedQuery ? 2 : 1);
  const kvOut = 2 * m.kvHeads * hd;
  let n = h * qOut + h * kvOut + m.heads * hd * h;
  if (d.attentionBias === true) n += qOut + kvOut + h;
  else if (d.attentionBias === 'qkv') n += qOut + kvOut;
  if (d.qkNorm) n += 2 * hd;
  // gpt-oss: one learned attention-sink logit per head.
  if (d.modelType === 'gpt_oss') n += m.heads;
  return n;
}

/** DeepSeek-V2/V3 attention: low-rank q (q_a, norm, q_b) or a full q_proj, the joint kv latent (kv_a with the rope key, norm, kv_b), o_proj. */
function mlaParams(m: ModelShape): number {
  const { kvLoraRank, qkRopeHeadDim, qkNopeHeadDim, vHeadDim, qLoraRank } = m.mla!;
  const h = m.hidden;
  const qHead = qkNopeHeadDim + qkRopeHeadDim;
  const q = qLoraRank ? h * qLoraRank + qLoraRank + qLoraRank * m.heads * qHead : h * m.heads * qHead;
  const kv = h * (kvLoraRank + qkRopeHeadDim) + kvLoraRank + kvLoraRank * m.heads * (qkNopeHeadDim + vHeadDim);
  return q + kv + m.heads * vHeadDim * h;
}

/** Qwen3-Next Gated DeltaNet: in_proj_qkvz, in_proj_ba, the depthwise conv over q/k/v, dt_bias, A_log, the gated norm, out_proj. */
function gatedDeltaNet(h: number, l: NonNullable<ArchDetail['linear']>): number {
  const convDim = 2 * l.keyDim + l.valueDim;
  return h * (2 * l.keyDim + 2 * l.valueDim) + h * 2 * l.valueHeads + convDim * l.convKernel + 2 * l.valueHeads + l.valueHeadDim + l.valueDim * h;
}

/**
 * Nemotron-H (transformers' NemotronHForCausalLM): per block one RMSNorm and one mixer. Mamba-2: in_proj to
 * z, x, B, C and dt (2·d_inner + 2·groups·state + heads), the depthwise conv over x, B, C, dt_bias, A_log, D, the
 * gated norm over d_inner, out_proj. MLP: up and down (relu², not gated). MoE blocks as the MoE count above.
 */
function hybridParams(m: ModelShape, d: ArchDetail, b: HybridBlocks): ParamCounts {
  const h = m.hidden;
  const { heads, headDim, state, groups, convKernel, convBias } = b.mamba2;
  const inner = heads * headDim;
  const convDim = inner + 2 * groups * state;
  const mamba = h * (2 * inner + 2 * groups * state + heads) + convDim * convKernel + (convBias ? convDim : 0) + 3 * heads + inner + inner * h;
  const attention = standardAttention(m, d, m.headDim ?? h / m.heads);
  const mlp = (width: number) => (d.gatedMlp ? 3 : 2) * h * width + (d.mlpBias ? (d.gatedMlp ? 2 : 1) * width + h : 0);
  let expertTotal = 0;
  let expertActive = 0;
  if (b.moe > 0 && m.experts && m.expertsPerToken) {
    const expert = mlp(m.moe?.expertIntermediate ?? m.intermediate ?? 0);
    const router = h * m.experts + m.experts;
    const shared = m.moe?.sharedExpertIntermediate ? mlp(m.moe.sharedExpertIntermediate) : 0;
    expertTotal = b.moe * (router + shared + m.experts * expert);
    expertActive = b.moe * (router + shared + m.expertsPerToken * expert);
  }
  const embedding = (m.vocab ?? 0) * h;
  const head = m.tiedEmbeddings === false ? embedding : 0;
  const shared = b.mamba * mamba + b.attention * attention + b.mlp * mlp(d.denseIntermediate) + (m.layers + 1) * h + embedding + head;
  return { total: shared + expertTotal, active: shared + expertActive };
}
