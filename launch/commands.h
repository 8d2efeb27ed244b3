// The pgkm subcommands: each maps its options to the pipeline's parameters, makes one
// library call and prints the outcome. Each returns normally on success and throws
// pgkm::Error with a message for the user otherwise; main() turns that into one line and
// an exit code.
#pragma once

#include <string>

#include "dist/world.h"
#include "pipeline/params.h"

namespace pgkm {

void run_quantize(const QuantizeParams& params, World& world);
void run_inspect(const std::string& archive);
void run_reconstruct(const std::string& archive, const std::string& out);

}  // namespace pgkm
