//===- loom-seal.cc - Patch the checksum of a Loom artifact ---------------===//
//
// This file is the `loom-seal` tool: it computes the file checksum of each
// artifact named on the command line and writes it into the manifest, which
// is the last step of producing an artifact the runtime will accept.
//
//===----------------------------------------------------------------------===//

#include "loom/runtime.h"

#include <cstdio>
#include <cstring>

int main(int argc, char **argv) {
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0) {
    std::fprintf(stderr,
                 "usage: %s ARTIFACT.so...\n"
                 "Writes the file checksum into each artifact's "
                 "manifest.\n",
                 argv[0]);
    return argc < 2 ? 2 : 0;
  }
  int failures = 0;
  for (int i = 1; i < argc; ++i) {
    if (loom_status_t status = loom_artifact_file_seal(argv[i])) {
      std::fprintf(stderr, "loom-seal: %s\n", loom_status_message(status));
      loom_status_free(status);
      ++failures;
    }
  }
  return failures ? 1 : 0;
}
