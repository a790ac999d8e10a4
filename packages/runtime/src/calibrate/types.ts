/** What every stage of `ie quantize` reports as it goes (the CLI draws its progress from it). */
export interface QuantizeProgress {
  stage: 'calibrating' | 'searching' | 'packing' | 'judging';
  done: number;
  total: number;
  detail?: string;
}

export type ProgressFn = (p: QuantizeProgress) => void;
