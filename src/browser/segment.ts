/**
 * Segmentation from bytes in memory, for the browser app: the same model building, preprocessing
 * chain, sliding window (with the model's inference settings and mirroring TTA), inversion to the
 * input grid and NIfTI encoding as `uxnet predict`, with no file system and no node:* module.
 * Runs in a Web Worker (see ./segment-worker.ts) on the webgpu or the reference backend.
 */
import '../backends/reference/index.js';
import { setBackend } from '../engine/registry.js';
import { initWebGPU, webgpuInfo, webgpuUnavailableReason } from '../backends/webgpu/index.js';
import { encodeNifti } from '../io/nifti/encode.js';
import { gzip, webZipCodec } from '../io/web-compression.js';
import { parseWeights } from '../io/weights-format.js';
import { volumeToNifti } from '../data/nifti-volume.js';
import type { Volume, VoxelData } from '../data/volume.js';
import { buildModel, manifestChannels, ModelFolderError, validateManifest, type LoadedModel, type ModelManifest } from '../infer/model-manifest.js';
import { checkImage } from '../infer/image-checks.js';
import { checkMemberFormat, checkMembers, ENSEMBLE_FORMAT, manifestFormat, segmentVolume, validateEnsembleManifest, type Segmenter } from '../infer/ensemble-manifest.js';
import { LABEL_COLORS } from '../infer/label-colors.js';
import { InputError, isInputError } from './errors.js';

export { InputError, isInputError } from './errors.js';
export { readImage } from './image.js';

export type ComputeBackend = 'webgpu' | 'reference';

/** Opens the backend; for webgpu, the adapter name (or an InputError saying why there is none). */
export async function useBackend(backend: ComputeBackend): Promise<string> {
  if (backend === 'webgpu') {
    if (!(await initWebGPU({ quiet: true }))) throw new InputError(`WebGPU is not available: ${webgpuUnavailableReason() ?? 'unknown reason'}`);
    setBackend('webgpu');
    return webgpuInfo()?.adapter ?? 'WebGPU adapter';
  }
  setBackend('reference');
  return 'CPU (reference backend, Web Worker)';
}

export interface ModelBytes {
  /** model.json text */
  manifestText: string;
  manifestName: string;
  weights: Uint8Array;
  /** The weights' file name: its extension selects safetensors or .pth. */
  weightsName: string;
  /**
   * For an ensemble (model.json with "members"): each member's bytes, in the manifest's order;
   * `weights` and `weightsName` of the ensemble itself are then unused.
   */
  members?: ModelBytes[];
}

/** Parses and validates model.json, reads the weights and builds the network (every member's, for an ensemble) on the current backend. */
export async function loadModel(src: ModelBytes): Promise<Segmenter> {
  let json: unknown;
  try {
    json = JSON.parse(src.manifestText);
  } catch (e) {
    throw new ModelFolderError(`${src.manifestName}: not valid JSON (${(e as Error).message})`);
  }
  if (manifestFormat(json) === ENSEMBLE_FORMAT) {
    const manifest = validateEnsembleManifest(json, src.manifestName);
    if (src.members?.length !== manifest.members.length)
      throw new ModelFolderError(`${src.manifestName}: the ensemble lists ${manifest.members.length} members but ${src.members?.length ?? 0} were given`);
    const members: LoadedModel[] = [];
    try {
      for (const m of src.members) {
        let mj: unknown;
        try {
          mj = JSON.parse(m.manifestText);
        } catch (e) {
          throw new ModelFolderError(`${m.manifestName}: not valid JSON (${(e as Error).message})`);
        }
        checkMemberFormat(mj, m.manifestName);
        members.push(await loadSingleModel(m, mj));
      }
      checkMembers(manifest, members, src.manifestName);
    } catch (e) {
      for (const m of members) m.model.dispose();
      throw e;
    }
    return { manifest, members, dir: src.manifestName };
  }
  return loadSingleModel(src, json);
}

async function loadSingleModel(src: ModelBytes, json: unknown): Promise<LoadedModel> {
  const manifest = validateManifest(json, src.manifestName);
  let weights;
  try {
    weights = await parseWeights(src.weights, src.weightsName, webZipCodec);
  } catch (e) {
    if (isInputError(e)) throw new InputError(`${src.weightsName}: ${e.message}`);
    throw e;
  }
  const model = await buildModel(manifest, weights, { manifest: src.manifestName, weights: src.weightsName });
  return { manifest, model, dir: `${src.manifestName} + ${src.weightsName}` };
}

export interface ClassVolume {
  id: number;
  name: string;
  voxels: number;
  /** voxels x voxel volume (header pixdim), in millilitres */
  ml: number;
  rgb: [number, number, number];
}

export interface SegmentResult {
  /** The label map as a gzip NIfTI on the input's grid and header geometry (what `uxnet predict` writes). */
  labelsNifti: Uint8Array;
  shape: [number, number, number];
  networkShape: [number, number, number];
  /** mm³ of one voxel, from the input header's pixdim */
  voxelMm3: number;
  classes: ClassVolume[];
  /** World position (mm) of the foreground's centre, where the viewer puts its crosshair; null when empty. */
  focusMm: [number, number, number] | null;
  seconds: number;
  /** NaN/Inf voxels replaced, a constant image (the same checks as `uxnet predict`). */
  warnings: string[];
}

/** Voxel volume in mm³ from the header's pixdim[1..3] (what viewers and nibabel's zooms report). */
export function voxelVolumeMm3(v: Volume<VoxelData>): number {
  const p = v.header?.pixdim;
  if (!p) return 1;
  return Math.abs(p[1]! * p[2]! * p[3]!);
}

/** Centre of mass of the foreground voxels, mapped through the volume's affine to world mm. */
export function foregroundCentreMm(v: Volume<VoxelData>): [number, number, number] | null {
  const [X, Y, Z] = v.shape;
  let n = 0,
    sx = 0,
    sy = 0,
    sz = 0;
  for (let x = 0, i = 0; x < X; x++)
    for (let y = 0; y < Y; y++)
      for (let z = 0; z < Z; z++, i++) {
        if (v.data[i]! > 0) {
          n++;
          sx += x;
          sy += y;
          sz += z;
        }
      }
  if (!n) return null;
  const p = [sx / n, sy / n, sz / n];
  const a = v.affine;
  return [0, 1, 2].map((r) => a[r * 4]! * p[0]! + a[r * 4 + 1]! * p[1]! + a[r * 4 + 2]! * p[2]! + a[r * 4 + 3]!) as [number, number, number];
}

export function classVolumes(labels: VoxelData, manifest: Pick<ModelManifest, 'labels'>, voxelMm3: number): ClassVolume[] {
  const K = Object.keys(manifest.labels).length;
  const counts = new Array<number>(K).fill(0);
  for (let i = 0; i < labels.length; i++) counts[labels[i] as number]!++;
  const out: ClassVolume[] = [];
  for (let c = 1; c < K; c++) {
    out.push({
      id: c,
      name: manifest.labels[String(c)] ?? `class ${c}`,
      voxels: counts[c]!,
      ml: (counts[c]! * voxelMm3) / 1000,
      rgb: LABEL_COLORS[(c - 1) % LABEL_COLORS.length]!,
    });
  }
  return out;
}

/**
 * Segments `image` as `uxnet predict` does (same predictVolume, same label encoding), and returns
 * the gzip NIfTI of the labels with the per-class volumes.
 */
export async function segment(
  loaded: Segmenter,
  image: Volume<Float32Array>,
  opts: { tta?: boolean; onProgress?: (done: number, total: number) => void; name?: string } = {},
): Promise<SegmentResult> {
  const t0 = performance.now();
  const inChans = manifestChannels(('members' in loaded ? loaded.members[0]! : loaded).manifest).inChannels;
  if (image.channels !== inChans) {
    throw new InputError(`the image has ${image.channels} channel(s) but model '${loaded.manifest.name}' expects ${inChans}`);
  }
  const checked = checkImage(image, opts.name ?? 'the image');
  const pred = await segmentVolume(loaded, checked.image, { tta: opts.tta, onProgress: opts.onProgress });
  const encoded = encodeNifti(volumeToNifti(pred.labels, { label: true, description: `uxnet3d ${loaded.manifest.name}` }));
  const labelsNifti = await gzip(encoded);
  const voxelMm3 = voxelVolumeMm3(pred.labels);
  return {
    labelsNifti,
    shape: pred.labels.shape,
    networkShape: pred.networkShape,
    voxelMm3,
    classes: classVolumes(pred.labels.data, loaded.manifest, voxelMm3),
    focusMm: foregroundCentreMm(pred.labels),
    seconds: (performance.now() - t0) / 1000,
    warnings: checked.warnings,
  };
}
