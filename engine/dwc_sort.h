// Dense weights consolidation's sort (engine/dwc.cpp, Algorithm 5 line 2): entries
// ordered by (distance to the task's anchor, point index), a strict total order, so the
// serial sort and the sort with every thread give the same result. Large inputs use a
// stable LSD radix sort on the distance bits (non-negative doubles order like their bit
// patterns), about three times faster than std::sort; sorting is most of DWC's time on
// large layers.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

#include "engine/chunks.h"

namespace pgkm::dwc {

struct Entry {
  double dist;     // Euclidean distance to the current task's anchor
  uint32_t point;  // index into the input PointSet
  uint32_t slot;   // position of its row within the task before the sort

  // Ties in distance are broken by point index so the order, and with it every
  // later anchor choice, is fully determined by the data.
  bool operator<(const Entry& o) const {
    return dist < o.dist || (dist == o.dist && point < o.point);
  }
};

// Sorts v by (dist, point); tmp is scratch space (grown as needed).
void sort_entries(std::span<Entry> v, std::vector<Entry>& tmp);

// The same order, using every OpenMP thread (one chunk per thread in each pass).
void sort_entries_parallel(std::span<Entry> v, std::vector<Entry>& tmp);

}  // namespace pgkm::dwc
