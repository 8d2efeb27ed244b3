// A minimal stand-in for GoogleTest, for GPU machines that have no GoogleTest: it runs
// tests/test_cuda_backend.cpp unchanged. It covers what that file uses: TEST, TEST_F
// with SetUp/TearDown, GTEST_SKIP, FAIL, EXPECT_/ASSERT_ TRUE FALSE EQ NE LT LE GT GE,
// each taking `<< message`, and --gtest_filter. The real GoogleTest builds that file
// everywhere else (tests/CMakeLists.txt).
#pragma once

#include <cstddef>
#include <functional>
#include <ostream>
#include <sstream>
#include <string>
#include <utility>

namespace testing {

class Test {
 public:
  virtual ~Test() = default;
  // SetUp, then TestBody unless SetUp skipped or failed fatally, then TearDown.
  void Run();

 protected:
  virtual void SetUp() {}
  virtual void TearDown() {}
  virtual void TestBody() = 0;
};

namespace internal {

bool register_test(const char* suite, const char* name, std::function<Test*()> make);

class Message {
 public:
  template <typename T>
  Message& operator<<(const T& value) {
    out_ << value;
    return *this;
  }
  std::string str() const { return out_.str(); }

 private:
  std::ostringstream out_;
};

enum class Kind { kFailure, kSkip };

// `Reporter(...) = Message() << ...` records a failure or a skip with the text.
class Reporter {
 public:
  Reporter(Kind kind, const char* file, int line, std::string text)
      : kind_(kind), file_(file), line_(line), text_(std::move(text)) {}
  void operator=(const Message& message) const;

 private:
  Kind kind_;
  const char* file_;
  int line_;
  std::string text_;
};

template <typename T>
std::string describe(const T& value) {
  if constexpr (requires(std::ostream & o) { o << value; }) {
    std::ostringstream out;
    out << value;
    return out.str();
  } else {
    return "(a value that cannot be printed)";
  }
}

// How a and b differ: element by element for containers.
template <typename A, typename B>
std::string difference(const A& a, const B& b) {
  if constexpr (
      requires {
        a.size();
        b.size();
        a[0];
        b[0];
      } &&
      !requires(std::ostream & o) { o << a; }) {
    if (a.size() != b.size()) {
      return "sizes " + std::to_string(a.size()) + " and " + std::to_string(b.size());
    }
    for (size_t i = 0; i < a.size(); ++i) {
      if (!(a[i] == b[i])) {
        return "first difference at [" + std::to_string(i) + "]: " + describe(a[i]) + " vs " +
               describe(b[i]);
      }
    }
    return "equal elements";
  } else {
    return describe(a) + " vs " + describe(b);
  }
}

// "" when `ok`, else the failure text.
template <typename A, typename B>
std::string compare(bool ok, const A& a, const B& b, const char* op, const char* ea,
                    const char* eb) {
  if (ok) return {};
  return std::string("expected ") + ea + " " + op + " " + eb + ": " + difference(a, b);
}

}  // namespace internal
}  // namespace testing

#define MINITEST_BLOCKER_ \
  switch (0)              \
  case 0:                 \
  default:

#define MINITEST_REPORT_(kind, text)                                                         \
  ::testing::internal::Reporter(::testing::internal::Kind::kind, __FILE__, __LINE__, text) = \
      ::testing::internal::Message()

#define MINITEST_CMP_(a, b, op, on_fail)                                                 \
  MINITEST_BLOCKER_                                                                      \
  if (const std::string minitest_text_ =                                                 \
          [&] {                                                                          \
            const auto& minitest_a_ = (a);                                               \
            const auto& minitest_b_ = (b);                                               \
            return ::testing::internal::compare(minitest_a_ op minitest_b_, minitest_a_, \
                                                minitest_b_, #op, #a, #b);               \
          }();                                                                           \
      minitest_text_.empty())                                                            \
    ;                                                                                    \
  else                                                                                   \
    on_fail MINITEST_REPORT_(kFailure, minitest_text_)

#define MINITEST_BOOL_(cond, want, on_fail) \
  MINITEST_BLOCKER_                         \
  if (static_cast<bool>(cond) == want)      \
    ;                                       \
  else                                      \
    on_fail MINITEST_REPORT_(kFailure, std::string("expected ") + (want ? "" : "not ") + #cond)

#define EXPECT_EQ(a, b) MINITEST_CMP_(a, b, ==, )
#define EXPECT_NE(a, b) MINITEST_CMP_(a, b, !=, )
#define EXPECT_LT(a, b) MINITEST_CMP_(a, b, <, )
#define EXPECT_LE(a, b) MINITEST_CMP_(a, b, <=, )
#define EXPECT_GT(a, b) MINITEST_CMP_(a, b, >, )
#define EXPECT_GE(a, b) MINITEST_CMP_(a, b, >=, )
#define ASSERT_EQ(a, b) MINITEST_CMP_(a, b, ==, return )
#define ASSERT_NE(a, b) MINITEST_CMP_(a, b, !=, return )
#define EXPECT_TRUE(cond) MINITEST_BOOL_(cond, true, )
#define EXPECT_FALSE(cond) MINITEST_BOOL_(cond, false, )
#define ASSERT_TRUE(cond) MINITEST_BOOL_(cond, true, return )
#define ASSERT_FALSE(cond) MINITEST_BOOL_(cond, false, return )
#define FAIL() return MINITEST_REPORT_(kFailure, "failed")
#define GTEST_SKIP() return MINITEST_REPORT_(kSkip, "skipped")

#define MINITEST_TEST_(suite, name, base)                                                       \
  class suite##_##name##_Test : public base {                                                   \
    void TestBody() override;                                                                   \
  };                                                                                            \
  [[maybe_unused]] const bool suite##_##name##_registered = ::testing::internal::register_test( \
      #suite, #name, [] { return static_cast<::testing::Test*>(new suite##_##name##_Test); });  \
  void suite##_##name##_Test::TestBody()

#define TEST(suite, name) MINITEST_TEST_(suite, name, ::testing::Test)
#define TEST_F(fixture, name) MINITEST_TEST_(fixture, name, fixture)
