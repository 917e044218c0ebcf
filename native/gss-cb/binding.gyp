{
  "targets": [
    {
      "target_name": "impp_gss_cb",
      "sources": ["gss_cb.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra"],
      "libraries": ["<!@(krb5-config --libs gssapi)"]
    }
  ]
}
