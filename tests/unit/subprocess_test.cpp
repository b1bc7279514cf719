#include "virtcaps/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <string>

#include "virtcaps/strings.h"

namespace virtcaps {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

Deadline In(milliseconds duration) { return Clock::now() + duration; }

std::unique_ptr<Subprocess> StartShell(const std::string& script) {
  auto process = Subprocess::Start({"/bin/sh", "-c", script});
  EXPECT_TRUE(process) << process.error();
  return process ? std::move(process).value() : nullptr;
}

bool ProcessGone(pid_t pid) { return ::kill(pid, 0) != 0 && errno == ESRCH; }

TEST(SubprocessTest, ReadsStdoutLineByLineThenReportsTheExit) {
  auto process = StartShell("printf 'one\\ntwo\\n\\nthree'; exit 3");
  ASSERT_NE(process, nullptr);
  std::vector<std::string> lines;
  while (true) {
    auto line = process->ReadLine(In(seconds(10)));
    if (!line) {
      EXPECT_TRUE(process->closed()) << line.error();
      EXPECT_FALSE(process->timed_out());
      break;
    }
    lines.push_back(*line);
  }
  EXPECT_EQ(lines, (std::vector<std::string>{"one", "two", "", "three"}));
  auto how = process->Finish(In(seconds(10)));
  ASSERT_TRUE(how) << how.error();
  EXPECT_EQ(*how, "exited with status 3");
  EXPECT_TRUE(process->reaped());
  EXPECT_TRUE(ProcessGone(process->pid()));
}

TEST(SubprocessTest, ConversesOverStdinAndStdout) {
  auto process = Subprocess::Start({"/bin/cat"});
  ASSERT_TRUE(process) << process.error();
  for (const std::string text : {"hello", "{\"execute\": \"quit\"}", ""}) {
    ASSERT_TRUE((*process)->WriteLine(text, In(seconds(10))).ok());
    auto echo = (*process)->ReadLine(In(seconds(10)));
    ASSERT_TRUE(echo) << echo.error();
    EXPECT_EQ(*echo, text);
  }
  // cat ends when its input is closed, which Finish does first.
  auto how = (*process)->Finish(In(seconds(10)));
  ASSERT_TRUE(how) << how.error();
  EXPECT_EQ(*how, "exited with status 0");
}

TEST(SubprocessTest, CapturesStderrUpToTheLimit) {
  SubprocessOptions options;
  options.max_stderr_bytes = 1000;
  auto process = Subprocess::Start(
      {"/bin/sh", "-c", "echo '  first problem  ' >&2; head -c 100000 /dev/zero >&2; echo done"},
      options);
  ASSERT_TRUE(process) << process.error();
  auto line = (*process)->ReadLine(In(seconds(10)));
  ASSERT_TRUE(line) << line.error();
  EXPECT_EQ(*line, "done");
  ASSERT_TRUE((*process)->Finish(In(seconds(10))));
  EXPECT_EQ((*process)->stderr_text().size(), 1000u);
  EXPECT_EQ((*process)->FirstStderrLine(), "first problem");
}

TEST(SubprocessTest, ChildSeesOnlyStdinStdoutAndStderr) {
  int leaked = ::open("/dev/null", O_RDONLY);  // deliberately without O_CLOEXEC
  ASSERT_GE(leaked, 3);
  auto process = StartShell("ls /proc/$$/fd");
  ::close(leaked);
  ASSERT_NE(process, nullptr);
  std::vector<std::string> fds;
  while (auto line = process->ReadLine(In(seconds(10)))) fds.push_back(*line);
  EXPECT_EQ(fds, (std::vector<std::string>{"0", "1", "2"}));
}

TEST(SubprocessTest, RunsInItsOwnProcessGroup) {
  auto process = StartShell("awk '{print $5}' /proc/$$/stat");
  ASSERT_NE(process, nullptr);
  auto line = process->ReadLine(In(seconds(10)));
  ASSERT_TRUE(line) << line.error();
  EXPECT_EQ(ParseInt(Trim(*line)), process->pid());
  EXPECT_NE(process->pid(), ::getpgrp());
}

TEST(SubprocessTest, WritingToAChildThatClosedItsInputIsAnErrorNotSigpipe) {
  // SIGPIPE's default action would end this test binary.
  auto process = StartShell("exec 0<&-; echo ready; exec sleep 1000");
  ASSERT_NE(process, nullptr);
  auto ready = process->ReadLine(In(seconds(10)));
  ASSERT_TRUE(ready) << ready.error();
  Status status = process->WriteLine("anyone there?", In(seconds(10)));
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("closed its input"), std::string::npos) << status.message();
  process->Kill();
  EXPECT_TRUE(ProcessGone(process->pid()));
}

TEST(SubprocessTest, UnstartableProgramIsAnErrorNamingIt) {
  auto process = Subprocess::Start({"/nonexistent/qemu-system-x86_64", "-S"});
  ASSERT_FALSE(process);
  EXPECT_NE(process.error().find("/nonexistent/qemu-system-x86_64"), std::string::npos);
  EXPECT_NE(process.error().find("No such file"), std::string::npos) << process.error();
  EXPECT_FALSE(Subprocess::Start({}));
}

// The hanging child starts a grandchild in its process group. At the deadline both
// must die and the child must be reaped. To see the grandchild's end without racing
// init, this process becomes the subreaper its orphan is handed to, and waits for it
// through a pidfd with a generous bound (a wait, not a sleep).
TEST(SubprocessTest, KillsTheWholeGroupAtTheDeadlineAndReapsTheChild) {
  ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  auto process = StartShell("sleep 1000 & echo $!; exec sleep 1000");
  ASSERT_NE(process, nullptr);
  pid_t child = process->pid();
  auto line = process->ReadLine(In(seconds(10)));
  ASSERT_TRUE(line) << line.error();
  auto grandchild = ParseInt(*line);
  ASSERT_TRUE(grandchild.has_value()) << *line;
  int grandchild_fd = static_cast<int>(::syscall(SYS_pidfd_open, *grandchild, 0));
  ASSERT_GE(grandchild_fd, 0);

  auto start = Clock::now();
  auto next = process->ReadLine(start + milliseconds(300));
  auto waited = Clock::now() - start;
  ASSERT_FALSE(next);
  EXPECT_TRUE(process->timed_out());
  EXPECT_TRUE(process->reaped());
  EXPECT_GE(waited, milliseconds(300));
  EXPECT_LT(waited, seconds(5));
  EXPECT_TRUE(ProcessGone(child));  // killed and reaped: not even a zombie

  pollfd exited = {grandchild_fd, POLLIN, 0};
  ASSERT_EQ(::poll(&exited, 1, 10000), 1) << "the grandchild outlived the deadline";
  int status = 0;
  ASSERT_EQ(::waitpid(static_cast<pid_t>(*grandchild), &status, 0), *grandchild);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  EXPECT_TRUE(ProcessGone(static_cast<pid_t>(*grandchild)));
  ::close(grandchild_fd);
  ::prctl(PR_SET_CHILD_SUBREAPER, 0);

  // Later calls report the end instead of touching a reused pid.
  auto how = process->Finish(In(seconds(1)));
  ASSERT_TRUE(how);
  EXPECT_EQ(*how, "killed by signal 9");
}

TEST(SubprocessTest, FinishKillsAChildThatWillNotExit) {
  auto process = StartShell("trap '' TERM HUP; exec sleep 1000");
  ASSERT_NE(process, nullptr);
  auto start = Clock::now();
  auto how = process->Finish(start + milliseconds(200));
  ASSERT_FALSE(how);
  EXPECT_GE(Clock::now() - start, milliseconds(200));
  EXPECT_TRUE(process->timed_out());
  EXPECT_TRUE(ProcessGone(process->pid()));
}

TEST(SubprocessTest, DestructorKillsAndReaps) {
  pid_t pid;
  {
    auto process = StartShell("exec sleep 1000");
    ASSERT_NE(process, nullptr);
    pid = process->pid();
    ASSERT_EQ(::kill(pid, 0), 0);
  }
  EXPECT_TRUE(ProcessGone(pid));
}

TEST(SubprocessTest, OverlongLineIsAnError) {
  SubprocessOptions options;
  options.max_line_bytes = 1000;
  auto process =
      Subprocess::Start({"/bin/sh", "-c", "head -c 5000 /dev/zero | tr '\\0' x"}, options);
  ASSERT_TRUE(process) << process.error();
  auto line = (*process)->ReadLine(In(seconds(10)));
  ASSERT_FALSE(line);
  EXPECT_NE(line.error().find("longer than 1000 bytes"), std::string::npos) << line.error();
}

}  // namespace
}  // namespace virtcaps
