/**
 * The kernel contract: every backend implements these functions (tinygrad-style small interface).
 *
 * Ops (src/engine/ops) validate shapes, call kernels through the registry, and define gradients in
 * terms of other kernels, so a backend only supplies forward/backward arithmetic.
 *
 * Conventions shared by every kernel:
 * - Tensors are float32, row-major, NCDHW for 5-D activations. `KTensor.data` is the backend's own
 *   storage handle (the reference backend uses a Float32Array; native and webgpu use their own).
 * - Kernels never modify their inputs, except `adamwStep` (documented in place) .
 * - Every output is a freshly allocated tensor owned by the caller.
 * - Accumulate sums in at least float64-equivalent precision or use two-pass/Welford statistics:
 *   the fixtures pin instance norm with mean≈100 (E[x²]−E[x]² in float32 fails).
 */
export interface KTensor {
  readonly shape: readonly number[];
  readonly data: unknown;
}

export type Triple = readonly [number, number, number];

export interface Conv3dAttrs {
  stride: Triple;
  padding: Triple;
  /** in and out channels must both be divisible by groups. */
  groups: number;
}

export interface AdamWAttrs {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1-based step count t, already incremented for this update. */
  step: number;
}

/**
 * Fused multi-head attention (ops/attention.ts). q [B, N, Cq], k [B, M, Ck], v [B, M, Cv] are token-major;
 * head h of q is columns qCol + h·headDim … + headDim (likewise k, v), so a packed qkv Linear output is
 * read in place. scores[b,h,i,j] = ((q·qScale)·k)·sScale + bias[h,i,j] + mask[b mod nW, i, j].
 */
export interface AttentionAttrs {
  heads: number;
  headDim: number;
  qCol: number;
  kCol: number;
  vCol: number;
  qScale: number;
  sScale: number;
}

/** The inference epilogue of the fused conv (conv3dFused). */
export interface ConvEpilogueArgs {
  bn: { invStd: Float32Array; shift: Float32Array; w: KTensor | null; b: KTensor | null } | null;
  relu: boolean;
  res: KTensor | null;
}

export interface Kernels {
  /** y[n,o] = b[o] + Σ w[o,i',k]·x[n, g·Cin/G + i', o·s + k − p]; weight [Cout, Cin/groups, kd, kh, kw]; zero padding. Output spatial size floor((n + 2p − k)/s) + 1. */
  conv3d(x: KTensor, w: KTensor, bias: KTensor | null, a: Conv3dAttrs): KTensor;
  /** dL/dx of conv3d given dy; `inputShape` is x's shape (needed because stride floors sizes). Also serves as conv_transpose3d forward. */
  conv3dGradInput(dy: KTensor, w: KTensor, a: Conv3dAttrs & { inputShape: readonly number[] }): KTensor;
  /** dL/dw of conv3d, shape `weightShape` = [Cout, Cin/groups, kd, kh, kw]. */
  conv3dGradWeight(x: KTensor, dy: KTensor, a: Conv3dAttrs & { weightShape: readonly number[] }): KTensor;
  /** Σ over N and spatial axes: [N, C, ...] -> [C]. Used for bias and per-channel gradients. */
  sumToChannels(x: KTensor): KTensor;

  /** Instance norm without affine over the spatial axes of each (n, c), biased variance: returns [y, rstd] with rstd shape [N, C] = 1/sqrt(var + eps). */
  instanceNorm(x: KTensor, a: { eps: number }): [KTensor, KTensor];
  /** dx = rstd·(dy − mean(dy) − y·mean(dy·y)) per (n, c), where y is the forward output. */
  instanceNormGrad(dy: KTensor, y: KTensor, rstd: KTensor): KTensor;

  /**
   * LayerNorm over the channel axis with affine weight/bias [C], biased variance, eps inside the sqrt.
   * channelsLast=false: x is [N, C, ...spatial], normalised over axis 1 at every voxel (official channels_first).
   * channelsLast=true: x is [..., C], normalised over the last axis (F.layer_norm).
   * Returns [y, mean, rstd]; mean and rstd hold one value per normalised vector, in x's order without C.
   */
  layerNorm(x: KTensor, w: KTensor, b: KTensor, a: { eps: number; channelsLast: boolean }): [KTensor, KTensor, KTensor];
  /** Returns [dx, dw, db] for layerNorm. */
  layerNormGrad(dy: KTensor, x: KTensor, w: KTensor, mean: KTensor, rstd: KTensor, a: { channelsLast: boolean }): [KTensor, KTensor, KTensor];

  /** Exact GELU 0.5·x·(1 + erf(x/√2)). */
  gelu(x: KTensor): KTensor;
  geluGrad(dy: KTensor, x: KTensor): KTensor;
  /** x > 0 ? x : slope·x. */
  leakyRelu(x: KTensor, a: { slope: number }): KTensor;
  /** x > 0 ? dy : slope·dy (PyTorch: the slope applies at exactly 0). */
  leakyReluGrad(dy: KTensor, x: KTensor, a: { slope: number }): KTensor;

  /** Elementwise a + b, identical shapes. */
  add(a: KTensor, b: KTensor): KTensor;
  /** Elementwise x·factor. */
  scale(x: KTensor, a: { factor: number }): KTensor;
  /** y[n,c,...] = x[n,c,...]·s[c]; s has shape [C]. */
  mulChannel(x: KTensor, s: KTensor): KTensor;
  /** d/ds of mulChannel: Σ over N and spatial of dy·x, shape [C]. */
  mulChannelGradScale(dy: KTensor, x: KTensor): KTensor;
  /** Concatenate along axis 1 (all other dims equal). */
  concatChannels(xs: readonly KTensor[]): KTensor;
  /** Channels [start, end) of x along axis 1. */
  sliceChannels(x: KTensor, a: { start: number; end: number }): KTensor;

  /** Softmax over axis 1 (max-subtracted). */
  softmax(x: KTensor): KTensor;
  /** dx = y·(dy − Σ_c dy·y). */
  softmaxGrad(dy: KTensor, y: KTensor): KTensor;
  /** Mean over all N·spatial voxels of −log_softmax(logits)[target]; target [N,1,...] holds class indices as floats. Returns shape [1]. */
  crossEntropy(logits: KTensor, target: KTensor): KTensor;
  /** dlogits = dloss[0]·(softmax(logits) − onehot(target)) / (N·spatial). */
  crossEntropyGrad(dloss: KTensor, logits: KTensor, target: KTensor): KTensor;
  /**
   * MONAI soft Dice loss on probabilities [N, C, ...] against class-index target [N,1,...], no squares,
   * per-sample per-class: f = 1 − (2I + smoothNr)/(G + P + smoothDr), loss = mean over N·C.
   * Returns [loss shape [1], stats shape [N, C, 3] holding (I, G, P)].
   */
  diceLoss(probs: KTensor, target: KTensor, a: { smoothNr: number; smoothDr: number }): [KTensor, KTensor];
  /** dprobs[n,c,v] = −dloss[0]/(N·C) · (2·g·(G+P+sDr) − (2I+sNr)) / (G+P+sDr)², g = onehot(target). */
  diceLossGrad(dloss: KTensor, target: KTensor, stats: KTensor, a: { smoothNr: number; smoothDr: number; channels: number }): KTensor;

  /** Sum of all elements, shape [1]. */
  sum(x: KTensor): KTensor;
  /** A tensor of `shape` filled with s[0]·factor, where s has shape [1]. */
  fillFromScalar(s: KTensor, a: { shape: readonly number[]; factor: number }): KTensor;

  /**
   * Batched GEMM: y[b] = op(a[b])·op(b[b]) (+ bias on every row), op = transpose when the flag says so.
   * a is [B, M, K] ([B, K, M] with transA); b is [Bb, K, N] ([Bb, N, K] with transB) where Bb is B or 1
   * (1 = the same matrix for every batch); bias [N] or null. Returns [B, M, N]. Accumulate in float32
   * or better (GEMM-ordered sums are fine; the parity tolerance allows reassociation).
   */
  matmul(a: KTensor, b: KTensor, bias: KTensor | null, attrs: { transA: boolean; transB: boolean }): KTensor;
  /**
   * nn.Linear followed by exact GELU (transformer MLPs): x [M, K], w [N, K], bias [N] or null. Returns
   * [gelu(x·wᵀ + bias) [M, N], the pre-activation x·wᵀ + bias when keepPre (the gradient needs it), else
   * null]. Values equal the matmul and gelu kernels' run one after the other (linearGeluComposite); a
   * backend fuses them to skip a pass over the activation.
   */
  linearGelu(x: KTensor, w: KTensor, bias: KTensor | null, a: { keepPre: boolean }): [KTensor, KTensor | null];
  /**
   * Strided gather: y has `shape` and y[i] = x[offset + Σ_d i_d·strides[d]] (strides in elements, may be 0).
   * Serves permute, strided slice, crop and broadcast-to.
   */
  stridedCopy(x: KTensor, a: { shape: readonly number[]; offset: number; strides: readonly number[] }): KTensor;
  /**
   * The adjoint of stridedCopy for distinct positions: a zero tensor of `shape` with
   * y[offset + Σ_d i_d·strides[d]] = x[i] for every index i of x (strides given per dim of x). Serves pad and slice gradients.
   */
  stridedScatter(x: KTensor, a: { shape: readonly number[]; offset: number; strides: readonly number[] }): KTensor;
  /** torch.roll: y[i] = x[i with i_d replaced by (i_d − shifts[k]) mod n_d for d = dims[k]]; dims distinct and non-negative, shifts in [0, n_d). */
  roll(x: KTensor, a: { shifts: readonly number[]; dims: readonly number[] }): KTensor;
  /** a ∘ b with numpy broadcasting (right-aligned dims, size-1 dims stretch); output shape = the broadcast shape. */
  broadcastBinary(a: KTensor, b: KTensor, attrs: { op: 'add' | 'sub' | 'mul' }): KTensor;
  /** Sums x down to `shape`, broadcast-compatible with x (right-aligned; every dim of `shape` is x's or 1); the adjoint of broadcasting. */
  sumToShape(x: KTensor, a: { shape: readonly number[] }): KTensor;
  /**
   * y[r, :] = table[index[r], :]; table [R, C]; returns [index.length, C]. The index stays a host array
   * (the op has validated it is in [0, R)): backends upload it, or derive per-row lists for the scatter.
   */
  gatherRows(table: KTensor, a: { index: Int32Array }): KTensor;
  /** The adjoint of gatherRows: a zero [rows, C] tensor with dy[r, :] added into row index[r] (duplicates accumulate). */
  scatterAddRows(dy: KTensor, a: { index: Int32Array; rows: number }): KTensor;

  /**
   * Returns [out [B, N, heads·headDim] = softmax(scores)·v per head, token-major; lse [B, heads, N] =
   * log Σ_j exp(scores_ij) per query row, which the gradient uses to recompute the probabilities].
   * bias [heads, N, M] or null; mask [nW, N, M] (B divisible by nW) or null.
   */
  attention(q: KTensor, k: KTensor, v: KTensor, bias: KTensor | null, mask: KTensor | null, a: AttentionAttrs): [KTensor, KTensor];
  /**
   * The gradient of `attention` from the saved inputs, output and lse (no [B, heads, N, M] matrices):
   * p = exp(scores − lse), ds = p·(dO·v − dO·O). `share` says where the gradients of q, k, v go:
   * share[1] = 0 when k is the same tensor as q (its gradient is added into q's), share[2] = 0 or 1 when
   * v shares q's or k's tensor. Returns [dq, dk or null when shared, dv or null when shared, dbias
   * [heads, N, M] summed over B (null unless needBias)]; each gradient has its input's full shape.
   */
  attentionGrad(
    dout: KTensor,
    q: KTensor,
    k: KTensor,
    v: KTensor,
    bias: KTensor | null,
    mask: KTensor | null,
    out: KTensor,
    lse: KTensor,
    a: AttentionAttrs & { share: readonly [0, number, number]; needBias: boolean },
  ): [KTensor, KTensor | null, KTensor | null, KTensor | null];

  /**
   * PyTorch AdamW (single-tensor path), **in place** on p, m, v:
   * p *= 1 − lr·wd; m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²;
   * p −= (lr/(1−β1^t)) · m / (sqrt(v)/sqrt(1−β2^t) + eps). Scalars computed in float64 as Python does.
   */
  adamwStep(p: KTensor, g: KTensor, m: KTensor, v: KTensor, a: AdamWAttrs): void;

  // ---- Optional fused inference kernels: ops use them when the backend has them and no gradient is
  // recorded, else the composition they equal (same values, bit for bit on the native backend). ----
  /** groupNorm (γ w, β b, either may be null) then ReLU when `relu`: one stats pass and one apply pass. */
  groupNormAct?(x: KTensor, w: KTensor | null, b: KTensor | null, a: { groups: number; eps: number; relu: boolean }): KTensor;
  /**
   * batchNormEval from host invStd = 1/√(var+eps) and shift = −mean·invStd: ((x·invStd + shift)·w + b), then
   * ReLU when `relu`, then + res; each step rounded to float32 as the separate kernels do.
   */
  batchNormEvalAct?(x: KTensor, w: KTensor | null, b: KTensor | null, res: KTensor | null, a: { invStd: Float32Array; shift: Float32Array; relu: boolean }): KTensor;
  /** conv3dGradInput, then bias[c] added to every voxel of dx channel c (a transposed conv with bias). */
  conv3dGradInputBias?(dy: KTensor, w: KTensor, bias: KTensor, a: Conv3dAttrs & { inputShape: readonly number[] }): KTensor;
  /**
   * conv3d of concatChannels(xs) without materialising the concatenation, then the epilogue (when given) on
   * every output value v of channel c: BatchNorm(eval) v = (v·invStd[c] + shift[c])·w[c] + b[c] when `bn`,
   * ReLU when `relu`, + res (the output's shape) when `res`; each step rounded as the separate kernels do.
   */
  conv3dFused?(xs: readonly KTensor[], w: KTensor, bias: KTensor | null, ep: ConvEpilogueArgs | null, a: Conv3dAttrs): KTensor;
}

export type KernelName = keyof Kernels;
