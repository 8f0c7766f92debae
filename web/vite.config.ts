/**
 * Vite config of the browser app. `npm run build:web` writes web/dist; `npm run web` serves it live.
 *
 * The bundled model is whatever models/hippocampus holds when the app is built (or served): its
 * model.json and weights are copied as static files under model/, with model/files.json naming them,
 * so retraining the model never means editing the app. One of that model's held-out cases is copied
 * to sample/ (with sample/files.json naming it) for the page's "Try a sample" button.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { defineConfig, type Plugin } from 'vite';

const WEB = dirname(fileURLToPath(import.meta.url));
const ROOT = join(WEB, '..');
// UXNET_WEB_MODEL=DIR bundles another model folder (or ensemble folder) instead.
export const MODEL_DIR = process.env.UXNET_WEB_MODEL ? resolve(process.env.UXNET_WEB_MODEL) : join(ROOT, 'models', 'hippocampus');

function weightsIn(dir: string): string {
  const weights = ['weights.safetensors', 'weights.pth'].find((f) => existsSync(join(dir, f)));
  if (!existsSync(join(dir, 'model.json')) || !weights) throw new Error(`the bundled model folder ${dir} needs model.json and weights.safetensors (or weights.pth)`);
  return weights;
}

/** Member folders of an ensemble model.json ("members": [{"path": ...}]), else null. */
function ensembleMembers(): string[] | null {
  const json = JSON.parse(readFileSync(join(MODEL_DIR, 'model.json'), 'utf8')) as { members?: { path: string }[] };
  return Array.isArray(json.members) ? json.members.map((m) => m.path) : null;
}

/** The files of the bundled model, looked up as loadModelFolder does (safetensors, else .pth); an ensemble brings its members' files. */
function modelFiles(): Record<string, string> {
  if (!existsSync(join(MODEL_DIR, 'model.json'))) throw new Error(`the bundled model folder ${MODEL_DIR} needs model.json`);
  const members = ensembleMembers();
  if (!members) {
    const weights = weightsIn(MODEL_DIR);
    return { 'model.json': join(MODEL_DIR, 'model.json'), [weights]: join(MODEL_DIR, weights), 'files.json': '' };
  }
  const files: Record<string, string> = { 'model.json': join(MODEL_DIR, 'model.json'), 'files.json': '' };
  for (const m of members) {
    const dir = join(MODEL_DIR, m);
    const weights = weightsIn(dir);
    files[`${m}/model.json`] = join(dir, 'model.json');
    files[`${m}/${weights}`] = join(dir, weights);
  }
  return files;
}

function filesJson(files: Record<string, string>): string {
  const members = ensembleMembers();
  if (!members) return JSON.stringify({ manifest: 'model.json', weights: Object.keys(files).find((f) => f.startsWith('weights.')) });
  return JSON.stringify({
    manifest: 'model.json',
    members: members.map((m) => ({ path: m, manifest: `${m}/model.json`, weights: Object.keys(files).find((f) => f.startsWith(`${m}/weights.`)) })),
  });
}

function bundledModel(): Plugin {
  return {
    name: 'uxnet-bundled-model',
    configureServer(server) {
      server.middlewares.use('/model/', (req, res, next) => {
        const files = modelFiles();
        const name = (req.url ?? '').replace(/^\//, '').split('?')[0]!;
        if (!(name in files)) return next();
        res.setHeader('Content-Type', name.endsWith('.json') ? 'application/json' : 'application/octet-stream');
        res.end(name === 'files.json' ? filesJson(files) : readFileSync(files[name]!));
      });
    },
    generateBundle() {
      const files = modelFiles();
      for (const [name, path] of Object.entries(files)) {
        this.emitFile({ type: 'asset', fileName: `model/${name}`, source: name === 'files.json' ? filesJson(files) : readFileSync(path) });
      }
    },
  };
}

/**
 * The sample: the first held-out case of the bundled model (its training.split.val) found in the
 * dataset. A cross-validation ensemble holds out no case from all its members, so it offers its first
 * training case and says so.
 */
function sampleFiles(): Record<string, string> {
  const manifest = JSON.parse(readFileSync(join(MODEL_DIR, 'model.json'), 'utf8')) as { training?: { split?: { val?: string[]; train?: string[] }; folds?: number } };
  const images = join(ROOT, 'datasets', 'msd-hippocampus', 'imagesTr');
  const found = (ids: string[] | undefined) => (ids ?? []).find((c) => existsSync(join(images, `${c}.nii.gz`)));
  const heldOut = found(manifest.training?.split?.val);
  const id = heldOut ?? found(manifest.training?.split?.train);
  if (!id) return {};
  const k = manifest.training?.folds;
  const description = heldOut
    ? `${id}: an MSD Hippocampus MRI the bundled model never trained on (CC BY-SA 4.0)`
    : `${id}: an MSD Hippocampus MRI (CC BY-SA 4.0) that ${k ? `${k - 1} of the ${k} members` : 'the bundled model'} trained on, as every labelled case`;
  return { [`${id}.nii.gz`]: join(images, `${id}.nii.gz`), 'files.json': JSON.stringify({ image: `${id}.nii.gz`, description }) };
}

function bundledSample(): Plugin {
  return {
    name: 'uxnet-bundled-sample',
    configureServer(server) {
      server.middlewares.use('/sample/', (req, res, next) => {
        const files = sampleFiles();
        const name = (req.url ?? '').replace(/^\//, '').split('?')[0]!;
        if (!(name in files)) return next();
        res.setHeader('Content-Type', name.endsWith('.json') ? 'application/json' : 'application/octet-stream');
        res.end(name === 'files.json' ? files[name] : readFileSync(files[name]!));
      });
    },
    generateBundle() {
      for (const [name, v] of Object.entries(sampleFiles())) {
        this.emitFile({ type: 'asset', fileName: `sample/${name}`, source: name === 'files.json' ? v : readFileSync(v) });
      }
    },
  };
}

/** Browser code must not import Node built-ins (they would fail at run time, not at build time). */
function noNodeBuiltins(): Plugin {
  return {
    name: 'uxnet-no-node-builtins',
    enforce: 'pre',
    resolveId(id, importer) {
      if (id.startsWith('node:')) this.error(`${importer ?? '?'} imports '${id}': the browser app must only use browser-safe modules`);
      return null;
    },
  };
}

export default defineConfig({
  root: WEB,
  base: './',
  plugins: [noNodeBuiltins(), bundledModel(), bundledSample()],
  build: {
    outDir: join(WEB, 'dist'),
    emptyOutDir: true,
    target: 'es2022',
    // One large chunk (NiiVue) is expected; the warning is noise.
    chunkSizeWarningLimit: 4096,
  },
  worker: { format: 'es' },
  server: { host: '127.0.0.1', fs: { allow: [ROOT] } },
  preview: { host: '127.0.0.1' },
});
