// The pgkm subcommands: each maps its options to the pipeline's parameters, makes one
// library call and prints the outcome. Each returns normally on success and throws
// pgkm::Error with a message for the user otherwise; main() turns that into one line and
// an exit code.
#pragma once

#include <string>

#include "dist/world.h"
#include "pipeline/export_model.h"
#include "pipeline/params.h"

namespace pgkm {

// --verbose: libraries' own diagnostics (HDF5's whole error stack) go to stderr too;
// without it a failure is the one line that names its cause.
void set_verbose(bool on);

void run_quantize(const QuantizeParams& params, World& world);
void run_inspect(const std::string& archive);
// Reads every object of the archive back (io::ArchiveReader::verify), lists each damaged
// one on stdout and throws InputError when any is; else prints "verified N objects".
void run_verify(const std::string& archive);
void run_reconstruct(const std::string& archive, const std::string& out);
void run_export(const std::string& archive, ExportFormat format, const std::string& out);

}  // namespace pgkm
