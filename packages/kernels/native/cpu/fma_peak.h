// The FMA peak of the pool's cores, measured: the ceiling every GEMM figure is judged against.
#pragma once
#include "context.h"

namespace ie {

// GFLOP/s (an FMA is 2 FLOPs) of independent fused multiply-adds at the context's vector width
// on every pool thread for about `seconds`; 0 for the scalar ISA.
double measure_fma_peak(Context& ctx, double seconds);

}  // namespace ie
