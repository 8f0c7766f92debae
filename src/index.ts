/**
 * uxnet3d public API. Importing it registers every backend that can run here (native when its
 * addon loaded, reference always); WebGPU needs `await initWebGPU()` first.
 */
import './backends/index.js';

export * from './engine/index.js';
export {
  Rng,
  Module,
  Sequential,
  ModuleList,
  StateDictError,
  initContext,
  Conv3d,
  ConvTranspose3d,
  LayerNorm,
  InstanceNorm3d,
  LeakyReLU,
  GELU,
  type Layer,
  type LoadReport,
  type ShapeMismatch,
  type StateDictInput,
  type StateValue,
  type InitOptions,
  type Conv3dOptions as Conv3dLayerOptions,
  type ConvTranspose3dOptions,
  type LayerNormOptions,
} from './nn/index.js';
export * from './models/index.js';
export { DiceCELoss, type DiceCELossOptions, type DiceCELossResult } from './train/dice-ce-loss.js';
export { AdamW, type AdamWOptions, type AdamWStateDict } from './train/adamw.js';
export { loadSafetensors, saveSafetensors } from './io/load.js';
export { parseSafetensors, serializeSafetensors, readSafetensorsFile, writeSafetensorsFile, SafetensorsError, type RawTensor, type RawTensorMap } from './io/safetensors.js';
export { readPth, parsePth, PthError } from './io/pth.js';
export { readWeightsFile, WeightsFormatError } from './io/weights.js';
export * as nifti from './io/nifti/index.js';
export * as metrics from './metrics/index.js';
export { initWebGPU, closeWebGPU, webgpuInfo, webgpuUnavailableReason, type WebGPUInitOptions } from './backends/webgpu/index.js';
export { slidingWindowInference, modelPredictor, type WindowPredictor, type SlidingWindowOptions, type VolumeData } from './infer/sliding-window.js';
export type { BlendMode } from './infer/sliding-window-geometry.js';
export { loadModel, SegmentationModel, type SegmentOptions, type SegmentResult } from './infer/segment.js';
export { loadModelFolder, ModelFolderError, type ModelManifest, type LoadedModel } from './infer/model-folder.js';
export { NiftiError } from './io/nifti/errors.js';
export { VolumeError } from './data/nifti-volume.js';
export type { Volume, VoxelData } from './data/volume.js';
export {
  loadSegmenter,
  segmentVolume,
  predictEnsemble,
  writeEnsembleFolder,
  ensembleMembersOf,
  isEnsemble,
  segmenterParameters,
  disposeSegmenter,
  ENSEMBLE_FORMAT,
  type EnsembleManifest,
  type LoadedEnsemble,
  type Segmenter,
} from './infer/ensemble.js';
export { runCrossval, makeFolds, readSplitFile, type CrossvalOptions, type CrossvalResult, type Splits } from './train/crossval.js';
export { readHeldOutCases, type HeldOutCases } from './train/split-file.js';
export { crossvalPredict, type CrossvalPredictOptions, type CrossvalPredictResult } from './train/crossval-predict.js';
export { compareRuns, writeComparison, describeModelFolder, CompareError, type Comparison } from './train/compare.js';
export { countMacs } from './nn/macs.js';
// Training and preprocessing without a terminal: progress arrives through handlers.
export { runTraining, TrainRunError, type TrainRunOptions, type TrainRunResult } from './train/run.js';
export { resolveTrainConfig, TRAIN_DEFAULTS, TrainConfigError, type TrainConfig } from './train/config.js';
export type { TrainHandlers, StepEndEvent, ValidationEndEvent, CheckpointEvent } from './train/events.js';
export { preprocessDataset, PresetError, type PreprocessPlan, type PreprocessProgress } from './data/preprocess.js';
