{
  "variables": {
    "ie_common_cflags": [
      "-O3",
      "-fno-math-errno",
      "-fvisibility=hidden",
      "-Wall",
      "-Wextra",
      "-Wno-unused-parameter",
      "-Wno-missing-field-initializers",
      "-Wno-maybe-uninitialized",
      "-Wno-uninitialized"
    ]
  },
  "target_defaults": {
    "cflags_cc": [
      "-std=c++17",
      "<@(ie_common_cflags)"
    ],
    "cflags_cc!": [
      "-fno-exceptions",
      "-std=gnu++17",
      "-std=gnu++1y",
      "-std=gnu++14"
    ],
    "cflags!": [
      "-fno-exceptions"
    ],
    "include_dirs": [
      "native",
      "<!(node -p \"require('node-addon-api').include_dir\")"
    ],
    "defines": [
      "NAPI_VERSION=8",
      "NAPI_CPP_EXCEPTIONS",
      "NODE_ADDON_API_DISABLE_DEPRECATED"
    ]
  },
  "targets": [
    {
      "target_name": "ie_avx2",
      "type": "static_library",
      "sources": [
        "native/gemv/gemv_avx2.cc",
        "native/gemv/int8act_avx2.cc",
        "native/gemv/i8x16_avx2.cc",
        "native/gemv/kquant_x16_avx2.cc",
        "native/gemv/blocks_avx2.cc",
        "native/gemm/gemm_avx2.cc",
        "native/gemm/gemm_q8_avx2.cc",
        "native/ops/ops_avx2.cc"
      ],
      "cflags_cc": [
        "-mavx2",
        "-mfma",
        "-mf16c",
        "-fPIC"
      ]
    },
    {
      "target_name": "ie_avxvnni",
      "type": "static_library",
      "sources": [
        "native/gemv/int8act_avxvnni.cc",
        "native/gemm/gemm_q8_avxvnni.cc"
      ],
      "cflags_cc": [
        "-mavx2",
        "-mfma",
        "-mf16c",
        "-mavxvnni",
        "-fPIC"
      ]
    },
    {
      "target_name": "ie_avx512",
      "type": "static_library",
      "sources": [
        "native/gemv/gemv_avx512.cc",
        "native/gemv/blocks_avx512.cc",
        "native/gemm/gemm_avx512.cc",
        "native/gemm/pack_kquant_x16_avx512.cc",
        "native/ops/ops_avx512.cc",
        "native/gemv/int8act_avx512vnni.cc",
        "native/gemv/int8act_blocks_avx512vnni.cc",
        "native/gemm/gemm_q8_avx512vnni.cc",
        "native/gemv/q4x16_avx512vnni.cc",
        "native/gemv/i8x16_avx512vnni.cc",
        "native/gemv/kquant_x16_avx512vnni.cc"
      ],
      "cflags_cc": [
        "-mavx2",
        "-mfma",
        "-mf16c",
        "-mavx512f",
        "-mavx512bw",
        "-mavx512vl",
        "-mavx512dq",
        "-mavx512vnni",
        "-fPIC",
        "-Wno-uninitialized",
        "-Wno-maybe-uninitialized"
      ]
    },
    {
      "target_name": "ie_avx512vbmi",
      "type": "static_library",
      "sources": [
        "native/gemv/lut4_q8_avx512vbmi.cc"
      ],
      "cflags_cc": [
        "-mavx2",
        "-mfma",
        "-mf16c",
        "-mavx512f",
        "-mavx512bw",
        "-mavx512vl",
        "-mavx512dq",
        "-mavx512vnni",
        "-mavx512vbmi",
        "-fPIC",
        "-Wno-uninitialized",
        "-Wno-maybe-uninitialized"
      ]
    },
    {
      "target_name": "ie_kernels",
      "dependencies": [
        "ie_avx2",
        "ie_avxvnni",
        "ie_avx512",
        "ie_avx512vbmi"
      ],
      "sources": [
        "native/addon.cc",
        "native/napi/backing_store.cc",
        "native/context.cc",
        "native/cpu/cpu_features.cc",
        "native/cpu/dispatch.cc",
        "native/cpu/register.cc",
        "native/cpu/fma_peak.cc",
        "native/threadpool/threadpool.cc",
        "native/threadpool/topology.cc",
        "native/numa/numa.cc",
        "native/mem/mapping.cc",
        "native/mem/read_probe.cc",
        "native/matmul/matmul.cc",
        "native/attention/attention.cc",
        "native/gemv/gemv_ref.cc",
        "native/gemm/gemm_ref.cc",
        "native/ops/ops_ref.cc",
        "native/gemv/int8act_ref.cc",
        "native/gemv/blocks_ref.cc",
        "native/gemv/q4x16_ref.cc",
        "native/gemv/i8x16_ref.cc",
        "native/gemv/kquant_x16_ref.cc",
        "native/program/program.cc",
        "native/program/compile_op.cc"
      ],
      "libraries": [
        "-lpthread"
      ]
    }
  ]
}
