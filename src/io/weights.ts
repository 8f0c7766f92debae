/**
 * One entry point for weight files: dispatches on the extension to the safetensors or the PyTorch
 * checkpoint reader. Both return the same ordered name -> float32 tensor map.
 */
import { readSafetensorsFile, type RawTensorMap } from './safetensors.js';
import { readPth } from './pth.js';
import { weightsFormat } from './weights-format.js';

export { PTH_EXTENSIONS, SAFETENSORS_EXTENSIONS, WeightsFormatError, weightsFormat } from './weights-format.js';

/** Reads a weight file (.safetensors, or a torch.save checkpoint .pth/.pt/.bin/.ckpt) as float32 tensors. */
export async function readWeightsFile(path: string): Promise<RawTensorMap> {
  return weightsFormat(path) === 'safetensors' ? (await readSafetensorsFile(path)).tensors : readPth(path);
}
