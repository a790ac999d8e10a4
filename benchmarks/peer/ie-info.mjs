// What both ie workers report of the engine's layout choices (EngineInfo), in one shape.

/** Matrices in 16-row records, per type: what auto (or IE_Q4_LAYOUT / IE_I8_LAYOUT) chose. */
export function rows16Matrices(info) {
  return {
    q4: info.q4Rows16Matrices,
    iq4_nl: info.iq4NlRows16Matrices,
    q4_k: info.q4kRows16Matrices,
    q5_k: info.q5kRows16Matrices,
    q6_k: info.q6kRows16Matrices,
    i8: info.i8Rows16Matrices,
  };
}
