// Shard-parallel k-means without MPI: several "ranks" are threads of this process that
// share a layer through an in-memory communicator. Every rank must return exactly what
// one rank computes alone, for every algorithm and rank count.
#include <gtest/gtest.h>

#include <barrier>
#include <functional>
#include <thread>

#include "engine/kmeans.h"
#include "tests/test_data.h"

namespace pgkm {
namespace {

// Collectives over threads: each rank publishes its buffer, everyone waits, each reads
// what it needs in rank order, everyone waits again before buffers are reused.
class ThreadGroup {
 public:
  explicit ThreadGroup(int size) : size_(size), sync_(size), slots_(static_cast<size_t>(size)) {}

  class Member final : public Communicator {
   public:
    Member(ThreadGroup& g, int rank) : g_(g), rank_(rank) {}
    int rank() const override { return rank_; }
    int size() const override { return g_.size_; }
    void allreduce_sum(std::span<int64_t> data) override { reduce(data); }
    void allreduce_sum(std::span<uint64_t> data) override { reduce(data); }
    void allgather(std::span<const uint32_t> local, std::span<uint32_t> all) override {
      publish(local.data());
      for (int r = 0; r < g_.size_; ++r) {
        const ShardRange s = shard_range(static_cast<int64_t>(all.size()), r, g_.size_);
        const auto* src = static_cast<const uint32_t*>(g_.slots_[static_cast<size_t>(r)]);
        std::copy(src, src + s.size(), all.begin() + s.begin);
      }
      g_.sync_.arrive_and_wait();
    }
    void broadcast(std::span<std::byte> data, int root) override {
      publish(data.data());
      const auto* src = static_cast<const std::byte*>(g_.slots_[static_cast<size_t>(root)]);
      if (rank_ != root) std::copy(src, src + data.size(), data.begin());
      g_.sync_.arrive_and_wait();
    }
    void barrier() override { g_.sync_.arrive_and_wait(); }

   private:
    void publish(const void* p) {
      g_.slots_[static_cast<size_t>(rank_)] = p;
      g_.sync_.arrive_and_wait();
    }
    template <typename T>
    void reduce(std::span<T> data) {
      const std::vector<T> mine(data.begin(), data.end());
      publish(mine.data());
      for (size_t i = 0; i < data.size(); ++i) {
        T total = 0;
        for (int r = 0; r < g_.size_; ++r)
          total += static_cast<const T*>(g_.slots_[static_cast<size_t>(r)])[i];
        data[i] = total;
      }
      g_.sync_.arrive_and_wait();
    }
    ThreadGroup& g_;
    int rank_;
  };

  // Runs f(rank, communicator) on `size` threads and waits for all of them.
  void run(const std::function<void(int, Communicator&)>& f) {
    std::vector<std::thread> threads;
    for (int r = 0; r < size_; ++r) {
      threads.emplace_back([&, r] {
        Member m(*this, r);
        f(r, m);
      });
    }
    for (auto& t : threads)
      t.join();
  }

 private:
  int size_;
  std::barrier<> sync_;
  std::vector<const void*> slots_;
};

KMeansResult run_group(Algorithm a, const std::vector<float>& v, int dim, int64_t k, int ranks,
                       int rank_to_return) {
  KMeansParams p;
  p.algorithm = a;
  p.n_centroids = k;
  p.seed = 11;
  std::vector<KMeansResult> results(static_cast<size_t>(ranks));
  ThreadGroup group(ranks);
  group.run([&](int rank, Communicator& comm) {
    auto backend = make_cpu_backend({.threads = 1});
    results[static_cast<size_t>(rank)] = run_kmeans({*backend, comm}, p, "layers.3.fc2", v, dim);
  });
  for (int r = 1; r < ranks; ++r) {
    EXPECT_EQ(results[static_cast<size_t>(r)].codes, results[0].codes) << "rank " << r;
    EXPECT_EQ(results[static_cast<size_t>(r)].centroids, results[0].centroids) << "rank " << r;
  }
  return results[static_cast<size_t>(rank_to_return)];
}

TEST(Sharding, AnyRankCountGivesTheSingleRankResult) {
  // Starving data exercises ipq's resolution and PG fine-tuning across the group.
  const auto starving = testdata::starving(4, 21);
  const auto normal = testdata::normal(3001, 8, 0.02f, 22);
  for (Algorithm a : {Algorithm::kIpq, Algorithm::kPgBase, Algorithm::kPg}) {
    const auto one_s = run_group(a, starving, 4, 64, 1, 0);
    const auto one_n = run_group(a, normal, 8, 128, 1, 0);
    for (int ranks : {2, 3, 4}) {
      const auto many_s = run_group(a, starving, 4, 64, ranks, ranks - 1);
      EXPECT_EQ(many_s.codes, one_s.codes) << algorithm_name(a) << " ranks " << ranks;
      EXPECT_EQ(many_s.centroids, one_s.centroids) << algorithm_name(a) << " ranks " << ranks;
      EXPECT_EQ(many_s.empty_clusters, one_s.empty_clusters);
      const auto many_n = run_group(a, normal, 8, 128, ranks, 0);
      EXPECT_EQ(many_n.codes, one_n.codes) << algorithm_name(a) << " ranks " << ranks;
      EXPECT_EQ(many_n.centroids, one_n.centroids) << algorithm_name(a) << " ranks " << ranks;
      EXPECT_EQ(many_n.objective, one_n.objective);
    }
  }
}

}  // namespace
}  // namespace pgkm
