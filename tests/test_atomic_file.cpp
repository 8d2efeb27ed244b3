// core/atomic_file.h: the one writer every output goes through.
#include "core/atomic_file.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/errors.h"
#include "tests/temp_files.h"

namespace pgkm {
namespace {

namespace fs = std::filesystem;

class AtomicFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("pgkm-atomic-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  static std::string read(const std::string& p) {
    std::ifstream in(p);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

  fs::path dir_;
};

TEST_F(AtomicFileTest, CommitReplacesTheFinalFile) {
  const std::string out = path("out.txt");
  { std::ofstream(out) << "old"; }
  {
    AtomicFile file(out);
    EXPECT_NE(file.temp_path(), out);
    EXPECT_TRUE(file.temp_path().starts_with(out + ".tmp-"));
    file.write("new content");
    EXPECT_EQ(read(out), "old");  // untouched until commit
    file.commit();
  }
  EXPECT_EQ(read(out), "new content");
  EXPECT_FALSE(testing::has_temporary_next_to(out));
}

TEST_F(AtomicFileTest, DestroyedWithoutCommitLeavesNothing) {
  const std::string out = path("out.txt");
  {
    AtomicFile file(out);
    file.write("partial");
    EXPECT_TRUE(fs::exists(file.temp_path()));
  }
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(testing::has_temporary_next_to(out));
}

TEST_F(AtomicFileTest, TemporaryNamesAreFreshEachTime) {
  const std::string out = path("out.txt");
  AtomicFile a(out);
  AtomicFile b(out);  // a second writer never opens the first one's file
  EXPECT_NE(a.temp_path(), b.temp_path());
}

// A symbolic link at the final path is replaced by the new file; the file it pointed to
// is never written.
TEST_F(AtomicFileTest, NeverWritesThroughASymlinkAtTheFinalPath) {
  const std::string victim = path("victim.txt");
  { std::ofstream(victim) << "precious"; }
  const std::string out = path("out.txt");
  fs::create_symlink(victim, out);
  AtomicFile file(out);
  file.write("new");
  file.commit();
  EXPECT_EQ(read(victim), "precious");
  EXPECT_FALSE(fs::is_symlink(out));
  EXPECT_EQ(read(out), "new");
}

TEST_F(AtomicFileTest, UnwritableDirectoryIsASystemErrorNamingThePath) {
  const std::string out = path("missing/out.txt");
  try {
    AtomicFile file(out);
    FAIL() << "expected SystemError";
  } catch (const SystemError& e) {
    EXPECT_NE(std::string(e.what()).find(out), std::string::npos) << e.what();
  }
}

TEST_F(AtomicFileTest, ModeFollowsTheUmask) {
  const mode_t old = ::umask(022);
  const std::string out = path("out.txt");
  {
    AtomicFile file(out);
    file.commit();
  }
  ::umask(old);
  struct stat st {};
  ASSERT_EQ(::stat(out.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0644u);
}

TEST_F(AtomicFileTest, StaleTemporariesAreRemovedAndNothingElse) {
  const std::string out = path("out.h5");
  for (const char* name : {"out.h5.tmp-0123abcd", "out.h5.tmp-precious", "out.h5.tmp",
                           "other.h5.tmp-0123abcd", "out.h5.tmp-0123abcde"}) {
    std::ofstream(path(name)) << "x";
  }
  fs::create_directory(path("out.h5.tmp-deadbeef"));
  remove_stale_temporaries(out);
  EXPECT_FALSE(fs::exists(path("out.h5.tmp-0123abcd")));
  for (const char* kept : {"out.h5.tmp-precious", "out.h5.tmp", "other.h5.tmp-0123abcd",
                           "out.h5.tmp-0123abcde", "out.h5.tmp-deadbeef"}) {
    EXPECT_TRUE(fs::exists(path(kept))) << kept;
  }
}

}  // namespace
}  // namespace pgkm
