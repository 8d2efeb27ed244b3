// One whole-model run: model + config -> HDF5 archive (+ JSON report), resumable, over
// every rank of `world`. The `pgkm quantize` command is this call plus printing.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "dist/world.h"
#include "io/report.h"
#include "pipeline/observer.h"
#include "pipeline/params.h"

namespace pgkm {

struct RunSummary {
  bool dry_run = false;
  // Rank 0: one row per quantized layer, in plan (name) order; in a dry run only sizes.
  std::vector<io::ReportLayer> rows;
  size_t kept = 0;          // tensors stored unchanged
  io::ReportTotals totals;  // sizes, and the run's wall time (not in a dry run)
  std::string backend;      // "cpu-avx2", "cuda:0", ... (not in a dry run)
  int ranks = 1;
};

// Every rank calls this with the same params. Rank 0 writes the archive (appearing by
// rename only when complete), the checkpoints in ARCHIVE.h5.parts/ and the report; the
// others stream their layers to it. Bad input throws InputError, failed calls
// SystemError, on the rank that met it (the caller ends the job: dist/world.h abort).
RunSummary quantize_model(const QuantizeParams& params, World& world, QuantizeObserver& observer);

}  // namespace pgkm
