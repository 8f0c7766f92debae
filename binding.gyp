{
  "variables": {
    "ux_common_cflags": ["-O3", "-fexceptions", "-std=c++17"]
  },
  "target_defaults": {
    "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
    "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
    "cflags!": ["-fno-exceptions", "-O2"],
    "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++20", "-O2"],
    "cflags_cc": ["<@(ux_common_cflags)"],
    "xcode_settings": {
      "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
      "CLANG_CXX_LANGUAGE_STANDARD": "c++17",
      "GCC_OPTIMIZATION_LEVEL": "3"
    },
    "msvs_settings": { "VCCLCompilerTool": { "ExceptionHandling": 1 } }
  },
  "targets": [
    {
      "target_name": "uxnet_isa_avx512",
      "type": "static_library",
      "sources": ["native/isa_avx512.cc"],
      "conditions": [
        ["target_arch=='x64' and OS!='win'", { "cflags_cc": ["-mavx512f", "-mfma", "-mavx2"], "xcode_settings": { "OTHER_CPLUSPLUSFLAGS": ["-mavx512f", "-mfma", "-mavx2"] } }]
      ]
    },
    {
      "target_name": "uxnet_isa_avx2",
      "type": "static_library",
      "sources": ["native/isa_avx2.cc"],
      "conditions": [
        ["target_arch=='x64' and OS!='win'", { "cflags_cc": ["-mavx2", "-mfma"], "xcode_settings": { "OTHER_CPLUSPLUSFLAGS": ["-mavx2", "-mfma"] } }]
      ]
    },
    {
      "target_name": "uxnet_attention",
      "type": "static_library",
      "sources": ["native/attention.cc"],
      "cflags_cc": ["-ffp-contract=fast", "-fno-trapping-math", "-Wno-psabi"]
    },
    {
      "target_name": "uxnet_native",
      "dependencies": ["uxnet_isa_avx512", "uxnet_isa_avx2", "uxnet_attention"],
      "sources": ["native/addon.cc", "native/runtime.cc", "native/kernels.cc", "native/conv.cc", "native/winograd.cc", "native/gemm.cc", "native/layout.cc", "native/norm_act.cc", "native/isa_generic.cc"],
      "cflags_cc": ["-ffp-contract=off", "-fno-trapping-math"],
      "conditions": [
        ["OS=='linux'", { "libraries": ["-lpthread"] }]
      ]
    }
  ]
}
