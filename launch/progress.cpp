#include "launch/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>

namespace pgkm {

Progress::Progress(double total_cost, bool allow_bar)
    : live_(allow_bar && isatty(STDERR_FILENO) == 1),
      total_cost_(total_cost),
      start_(std::chrono::steady_clock::now()) {}

void Progress::begin_layer(const std::string& label, double cost, int iterations) {
  label_ = label;
  layer_cost_ = cost;
  layer_iterations_ = std::max(iterations, 1);
  layer_done_ = 0;
  draw();
}

void Progress::iteration_done(int done) {
  layer_done_ = done;
  draw();
}

void Progress::layer_line(const std::string& line) {
  clear();
  done_cost_ += layer_cost_;
  layer_cost_ = 0;
  layer_done_ = 0;
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

void Progress::clear() {
  if (!drawn_) return;
  std::fprintf(stderr, "\r\033[K");
  std::fflush(stderr);
  drawn_ = false;
}

void Progress::draw() {
  if (!live_ || total_cost_ <= 0) return;
  const double done =
      done_cost_ + layer_cost_ * static_cast<double>(layer_done_) / layer_iterations_;
  const double fraction = std::clamp(done / total_cost_, 0.0, 1.0);
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  constexpr int kWidth = 30;
  const int filled = static_cast<int>(fraction * kWidth);
  std::string bar(static_cast<size_t>(filled), '#');
  bar.resize(kWidth, '.');
  char eta[32] = "--:--";
  if (fraction > 0.01) {
    const int remaining = static_cast<int>(elapsed * (1 - fraction) / fraction);
    std::snprintf(eta, sizeof eta, "%d:%02d", remaining / 60, remaining % 60);
  }
  std::fprintf(stderr, "\r\033[K[%s] %3.0f%%  ETA %s  %s (iteration %d/%d)", bar.c_str(),
               100 * fraction, eta, label_.c_str(), layer_done_, layer_iterations_);
  std::fflush(stderr);
  drawn_ = true;
}

}  // namespace pgkm
