import { UXNetInputError } from './uxnet.js';

/** An input a network cannot process. A UXNetInputError, so every caller reports all networks alike. */
export class NetworkInputError extends UXNetInputError {
  constructor(message: string) {
    super(message);
    this.name = 'NetworkInputError';
  }
}

/** Rank, batch and channel checks shared by every network. */
export function checkBasicInput(label: string, shape: readonly number[], inChannels: number): void {
  const s = `[${shape.join(', ')}]`;
  if (shape.length !== 5) throw new NetworkInputError(`${label} input must be 5-D [N, C, D, H, W], got shape ${s}`);
  if (shape[0]! < 1) throw new NetworkInputError(`${label} input has an empty batch: shape ${s}`);
  if (shape[1] !== inChannels) throw new NetworkInputError(`${label} input has ${shape[1]} channel(s) but the model expects in_channels = ${inChannels} (shape ${s})`);
}
