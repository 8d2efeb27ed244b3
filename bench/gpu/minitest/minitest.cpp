// The runner of the GoogleTest stand-in (gtest/gtest.h): every registered test in
// registration order, --gtest_filter=POSITIVE[-NEGATIVE] with ':'-separated globs, and
// a closing "N passed, N failed, N skipped" line. Exit status 1 when a test failed.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace testing {
namespace internal {
namespace {

struct Entry {
  std::string name;  // Suite.Name
  std::function<Test*()> make;
};

std::vector<Entry>& registry() {
  static std::vector<Entry> tests;
  return tests;
}

struct Outcome {
  bool failed = false;
  bool skipped = false;
};
Outcome current;

bool glob(const char* p, const char* s) {
  if (*p == '\0') return *s == '\0';
  if (*p == '*') return glob(p + 1, s) || (*s != '\0' && glob(p, s + 1));
  if (*s == '\0') return false;
  return (*p == '?' || *p == *s) && glob(p + 1, s + 1);
}

bool any_glob(const std::string& patterns, const std::string& name) {
  size_t start = 0;
  while (start <= patterns.size()) {
    const size_t end = std::min(patterns.find(':', start), patterns.size());
    if (glob(patterns.substr(start, end - start).c_str(), name.c_str())) return true;
    start = end + 1;
  }
  return false;
}

}  // namespace

bool register_test(const char* suite, const char* name, std::function<Test*()> make) {
  registry().push_back({std::string(suite) + "." + name, std::move(make)});
  return true;
}

void Reporter::operator=(const Message& message) const {
  const std::string extra = message.str();
  if (kind_ == Kind::kSkip) {
    current.skipped = true;
    std::printf("%s:%d: Skipped\n%s\n", file_, line_, extra.c_str());
    return;
  }
  current.failed = true;
  std::printf("%s:%d: Failure\n%s\n%s\n", file_, line_, text_.c_str(), extra.c_str());
}

}  // namespace internal

void Test::Run() {
  try {
    SetUp();
    if (!internal::current.skipped) TestBody();
  } catch (const std::exception& e) {
    internal::current.failed = true;
    std::printf("unexpected exception: %s\n", e.what());
  } catch (...) {
    internal::current.failed = true;
    std::printf("unexpected exception\n");
  }
  try {
    TearDown();
  } catch (...) {
    internal::current.failed = true;
    std::printf("exception in TearDown\n");
  }
}

}  // namespace testing

int main(int argc, char** argv) {
  std::string positive = "*", negative;
  for (int i = 1; i < argc; ++i) {
    const char* prefix = "--gtest_filter=";
    if (std::strncmp(argv[i], prefix, std::strlen(prefix)) != 0) continue;
    const std::string filter = argv[i] + std::strlen(prefix);
    const size_t dash = filter.find('-');
    positive = dash == std::string::npos ? filter : filter.substr(0, dash);
    negative = dash == std::string::npos ? "" : filter.substr(dash + 1);
    if (positive.empty()) positive = "*";
  }
  using testing::internal::current;
  int passed = 0, failed = 0, skipped = 0;
  std::vector<std::string> failures;
  for (const auto& entry : testing::internal::registry()) {
    if (!testing::internal::any_glob(positive, entry.name)) continue;
    if (!negative.empty() && testing::internal::any_glob(negative, entry.name)) continue;
    std::printf("[ RUN      ] %s\n", entry.name.c_str());
    std::fflush(stdout);
    current = {};
    std::unique_ptr<testing::Test> test(entry.make());
    test->Run();
    const char* verdict = current.failed    ? "[  FAILED  ]"
                          : current.skipped ? "[  SKIPPED ]"
                                            : "[       OK ]";
    std::printf("%s %s\n", verdict, entry.name.c_str());
    std::fflush(stdout);
    if (current.failed) {
      ++failed;
      failures.push_back(entry.name);
    } else if (current.skipped) {
      ++skipped;
    } else {
      ++passed;
    }
  }
  for (const auto& name : failures)
    std::printf("[  FAILED  ] %s\n", name.c_str());
  std::printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
  return failed == 0 ? 0 : 1;
}
