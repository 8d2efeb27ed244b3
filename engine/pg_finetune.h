// Partitioning-Guided Cluster Fine-tuning (paper Section 4.2, Algorithm 2, Eq. 1).
#pragma once

#include "engine/cluster_state.h"
#include "engine/kmeans.h"

namespace pgkm {

// Resolves empty clusters by splitting populous ones, in rounds (see the .cpp for
// the exact rules). Leaves `state` assigned (codes, sums, counts) after the last round.
ResolutionOutcome pg_finetune(ClusterState& state, const PgParams& params);

}  // namespace pgkm
