import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { loadVolume, VolumeError } from './load.js';
import type { Sample } from './pipeline.js';
import type { Volume } from './volume.js';

export type Split = 'train' | 'val' | 'test';

/** One case: one file per image channel (nnU-Net `_0000`, `_0001`, ...) and an optional label. */
export interface Case {
  id: string;
  images: string[];
  label?: string;
  split: Split;
}

export interface Dataset {
  root: string;
  cases: Case[];
  modalities: string[];
  labels?: Record<string, string>;
  layout: 'dataset.json' | 'folders';
}

const NII = /\.nii(\.gz)?$/;
const CHANNEL = /_(\d{4})$/;

function stem(file: string): string {
  return basename(file).replace(NII, '');
}

function listNifti(dir: string): string[] {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) return [];
  return readdirSync(dir)
    .filter((f) => NII.test(f) && !f.startsWith('.'))
    .sort()
    .map((f) => join(dir, f));
}

/** Groups image files by case id, stripping nnU-Net's `_XXXX` channel suffix (channels sorted by it). */
function groupChannels(files: string[]): Map<string, string[]> {
  const m = new Map<string, { ch: number; path: string }[]>();
  for (const f of files) {
    const s = stem(f);
    const ch = CHANNEL.exec(s);
    const id = ch ? s.slice(0, -5) : s;
    const list = m.get(id) ?? [];
    list.push({ ch: ch ? Number(ch[1]) : 0, path: f });
    m.set(id, list);
  }
  return new Map([...m].map(([id, l]) => [id, l.sort((a, b) => a.ch - b.ch).map((x) => x.path)]));
}

function folderCases(root: string, imagesDir: string, labelsDir: string | null, split: Split): Case[] {
  const labels = new Map(labelsDir ? listNifti(join(root, labelsDir)).map((f) => [stem(f), f]) : []);
  return [...groupChannels(listNifti(join(root, imagesDir)))].map(([id, images]) => {
    const label = labels.get(id);
    if (labelsDir && split !== 'test' && !label) throw new VolumeError(`${join(root, imagesDir)}: case '${id}' has no label in ${labelsDir}/`);
    return { id, images, ...(label ? { label } : {}), split };
  });
}

function fromJson(root: string, json: Record<string, unknown>): Dataset {
  const rel = (p: string) => resolve(root, p);
  const modalityMap = (json.modality ?? json.channel_names ?? { 0: 'unknown' }) as Record<string, string>;
  const modalities = Object.keys(modalityMap)
    .sort((a, b) => Number(a) - Number(b))
    .map((k) => modalityMap[k]!);
  const labelsRaw = json.labels as Record<string, string | number> | undefined;
  const labels = labelsRaw && Object.fromEntries(Object.entries(labelsRaw).map(([k, v]) => (typeof v === 'number' ? [String(v), k] : [k, v])));
  const cases: Case[] = [];
  const entries = (json.training ?? json.cases) as { image: string | string[]; label?: string; id?: string }[] | undefined;
  const channelFiles = (img: string): string[] => {
    // MSD lists "imagesTr/x.nii.gz" even when nnU-Net split it into x_0000.nii.gz, x_0001.nii.gz ...
    if (existsSync(rel(img))) return [rel(img)];
    const base = rel(img).replace(NII, '');
    const ext = NII.exec(img)?.[0] ?? '.nii.gz';
    const split = modalities.map((_, c) => `${base}_${String(c).padStart(4, '0')}${ext}`);
    return split.every((p) => existsSync(p)) ? split : [rel(img)];
  };
  if (entries) {
    for (const e of entries) {
      const images = Array.isArray(e.image) ? e.image.map(rel) : channelFiles(e.image);
      cases.push({ id: e.id ?? stem(images[0]!).replace(CHANNEL, ''), images, ...(e.label ? { label: rel(e.label) } : {}), split: 'train' });
    }
    for (const e of (json.validation ?? []) as { image: string; label?: string }[]) {
      cases.push({ id: stem(e.image).replace(CHANNEL, ''), images: channelFiles(e.image), ...(e.label ? { label: rel(e.label) } : {}), split: 'val' });
    }
    for (const e of (json.test ?? []) as (string | { image: string })[]) {
      const img = typeof e === 'string' ? e : e.image;
      cases.push({ id: stem(img).replace(CHANNEL, ''), images: channelFiles(img), split: 'test' });
    }
  } else {
    // nnU-Net v2: no case list, files found by folder and file_ending.
    cases.push(...folderCases(root, 'imagesTr', 'labelsTr', 'train'), ...folderCases(root, 'imagesTs', null, 'test'));
  }
  return { root, cases, modalities, labels, layout: 'dataset.json' };
}

/**
 * Finds the cases of a dataset folder: MSD / nnU-Net `dataset.json` when present (including
 * `_0000` channel files), else the official 3D UX-Net layout imagesTr/labelsTr (train),
 * imagesVal/labelsVal (val) and imagesTs (test), pairing images and labels by file name.
 */
export function discoverDataset(dir: string): Dataset {
  const root = resolve(dir);
  if (!existsSync(root) || !statSync(root).isDirectory()) throw new VolumeError(`dataset '${dir}' is not a directory`);
  const jsonPath = join(root, 'dataset.json');
  let ds: Dataset;
  if (existsSync(jsonPath)) {
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(readFileSync(jsonPath, 'utf8'));
    } catch (e) {
      throw new VolumeError(`${jsonPath} is not valid JSON: ${(e as Error).message}`);
    }
    ds = fromJson(root, json);
  } else {
    const cases = [...folderCases(root, 'imagesTr', 'labelsTr', 'train'), ...folderCases(root, 'imagesVal', 'labelsVal', 'val'), ...folderCases(root, 'imagesTs', null, 'test')];
    const nCh = Math.max(1, ...cases.map((c) => c.images.length));
    ds = { root, cases, modalities: Array(nCh).fill('unknown'), layout: 'folders' };
  }
  if (ds.cases.length === 0) throw new VolumeError(`no cases found in '${dir}' (expected dataset.json or imagesTr/ + labelsTr/)`);
  for (const c of ds.cases) {
    for (const f of [...c.images, ...(c.label ? [c.label] : [])]) {
      if (!existsSync(f)) throw new VolumeError(`case '${c.id}': file '${f}' does not exist`);
    }
  }
  return ds;
}

/** Loads a case's channels (stacked, channel-first) and label. All channels must share one grid. */
export async function loadCase(c: Case): Promise<Sample> {
  const parts = await Promise.all(c.images.map((p) => loadVolume(p, 'image') as Promise<Volume<Float32Array>>));
  let image = parts[0]!;
  if (parts.length > 1) {
    for (const p of parts) {
      if (p.shape.some((d, k) => d !== image.shape[k]))
        throw new VolumeError(`case '${c.id}': channel files have different shapes (${parts.map((q) => q.shape.join('x')).join(' vs ')})`);
    }
    const data = new Float32Array(parts.reduce((a, p) => a + p.data.length, 0));
    let off = 0;
    for (const p of parts) {
      data.set(p.data, off);
      off += p.data.length;
    }
    image = { ...image, data, channels: parts.reduce((a, p) => a + p.channels, 0) };
  }
  const label = c.label ? await loadVolume(c.label, 'label') : undefined;
  if (label && label.shape.some((d, k) => d !== image.shape[k])) {
    throw new VolumeError(`case '${c.id}': label shape ${label.shape.join('x')} differs from image shape ${image.shape.join('x')}`);
  }
  return { image, label };
}
