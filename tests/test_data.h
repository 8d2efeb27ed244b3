// Synthetic data the tests make themselves (nothing is downloaded).
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace pgkm::testdata {

// n vectors of dim coordinates drawn from N(0, stddev^2): like trained weights.
inline std::vector<float> normal(int64_t n, int dim, float stddev, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> dist(0.f, stddev);
  std::vector<float> v(static_cast<size_t>(n * dim));
  for (float& x : v)
    x = dist(gen);
  return v;
}

// `blobs` well separated tight Gaussian blobs of `per_blob` vectors each.
inline std::vector<float> blobs(int blobs, int per_blob, int dim, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> centre(-10.f, 10.f);
  std::normal_distribution<float> noise(0.f, 0.05f);
  std::vector<float> v;
  for (int b = 0; b < blobs; ++b) {
    std::vector<float> c(static_cast<size_t>(dim));
    for (float& x : c)
      x = centre(gen);
    for (int i = 0; i < per_blob; ++i) {
      for (int d = 0; d < dim; ++d)
        v.push_back(c[static_cast<size_t>(d)] + noise(gen));
    }
  }
  return v;
}

// Built to starve clusters: one isolated vector repeated 6000 times, 7 more
// repeated 300 times, and 500 scattered distinct vectors (508 distinct in 8600).
// Random init with replacement puts most centroids on the isolated vector; its
// cluster is the most populated one and, being one repeated value, can never be
// split by a perturbation, so fairseq's heuristic spends every try on it.
inline std::vector<float> starving(int dim, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> spread(0.f, 1.f);
  std::vector<float> v;
  auto repeat = [&](const std::vector<float>& c, int copies) {
    for (int i = 0; i < copies; ++i)
      v.insert(v.end(), c.begin(), c.end());
  };
  repeat(std::vector<float>(static_cast<size_t>(dim), 20.f), 6000);
  for (int value = 0; value < 7; ++value) {
    std::vector<float> c(static_cast<size_t>(dim));
    for (float& x : c)
      x = spread(gen);
    repeat(c, 300);
  }
  for (int i = 0; i < 500 * dim; ++i)
    v.push_back(spread(gen));
  return v;
}

// Dense groups in a diffuse background: `background` N(0, 1) vectors plus `groups`
// groups of `per_group` vectors within 0.001 of a random centre.
inline std::vector<float> dense_groups(int background, int groups, int per_group, int dim,
                                       uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<float> spread(0.f, 1.f);
  std::normal_distribution<float> tight(0.f, 0.001f);
  std::vector<float> v;
  for (int i = 0; i < background * dim; ++i)
    v.push_back(spread(gen));
  for (int g = 0; g < groups; ++g) {
    std::vector<float> c(static_cast<size_t>(dim));
    for (float& x : c)
      x = spread(gen);
    for (int i = 0; i < per_group; ++i) {
      for (float x : c)
        v.push_back(x + tight(gen));
    }
  }
  return v;
}

}  // namespace pgkm::testdata
