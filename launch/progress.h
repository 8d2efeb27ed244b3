// Progress output for long runs: one line per finished layer on stdout, and a live
// bar with ETA on stderr when stderr is a terminal.
#pragma once

#include <chrono>
#include <string>

namespace pgkm {

class Progress {
 public:
  // total_cost: the summed clustering cost of the layers still to run (engine/size_plan.h).
  // allow_bar: draw the live bar when stderr is a terminal (only a one-rank job knows the
  // whole job's progress).
  Progress(double total_cost, bool allow_bar);

  // A layer of `cost` starts; `label` names it in the bar.
  void begin_layer(const std::string& label, double cost, int iterations);
  // Iteration `done` of the current layer finished.
  void iteration_done(int done);
  // Prints a finished layer's line to stdout (clearing the bar first).
  void layer_line(const std::string& line);
  // Clears the bar (before the totals or an error).
  void clear();

 private:
  void draw();

  bool live_;  // stderr is a terminal
  double total_cost_;
  double done_cost_ = 0;
  double layer_cost_ = 0;
  int layer_iterations_ = 1;
  int layer_done_ = 0;
  std::string label_;
  std::chrono::steady_clock::time_point start_;
  bool drawn_ = false;
};

}  // namespace pgkm
