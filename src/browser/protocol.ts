/** Messages between the browser app's page and its segmentation worker (./segment-worker.ts). */
import type { ComputeBackend, ModelBytes, SegmentResult } from './segment.js';

export interface SegmentRequest {
  type: 'segment';
  backend: ComputeBackend;
  /** Identifies the model, so a worker that already built it reuses it. */
  modelKey: string;
  model: ModelBytes;
  image: Uint8Array;
  imageName: string;
  tta: boolean;
}

export type WorkerMessage =
  | { type: 'ready'; backend: ComputeBackend; device: string }
  | { type: 'stage'; stage: string }
  | { type: 'progress'; done: number; total: number }
  | { type: 'result'; result: SegmentResult; backend: ComputeBackend; device: string }
  /** `input`: the user's files are the problem (message meant for them); otherwise a failure. */
  | { type: 'error'; message: string; input: boolean };
