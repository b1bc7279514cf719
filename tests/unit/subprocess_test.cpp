#include "virtcaps/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <string>
#include <thread>

#include "test_support.h"
#include "virtcaps/files.h"
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

// Only the tail is kept, where an emulator's last words are; the error line then
// comes from the end.
TEST(SubprocessTest, KeepsTheTailOfStderrUpToTheLimit) {
  SubprocessOptions options;
  options.max_stderr_bytes = 1000;
  auto process =
      Subprocess::Start({"/bin/sh", "-c",
                         "echo 'early noise' >&2; head -c 100000 /dev/zero | tr '\\0' x >&2;"
                         "echo >&2; echo '  qemu: the real problem  ' >&2; echo done"},
                        options);
  ASSERT_TRUE(process) << process.error();
  auto line = (*process)->ReadLine(In(seconds(10)));
  ASSERT_TRUE(line) << line.error();
  EXPECT_EQ(*line, "done");
  ASSERT_TRUE((*process)->Finish(In(seconds(10))));
  EXPECT_EQ((*process)->stderr_text().size(), 1000u);
  EXPECT_TRUE((*process)->stderr_truncated());
  EXPECT_EQ((*process)->StderrLine(), "qemu: the real problem");
}

TEST(SubprocessTest, FirstStderrLineWhenNothingWasDropped) {
  auto process = StartShell("echo '' >&2; echo '  first problem ' >&2; echo second >&2");
  ASSERT_NE(process, nullptr);
  ASSERT_TRUE(process->Finish(In(seconds(10))));
  EXPECT_FALSE(process->stderr_truncated());
  EXPECT_EQ(process->StderrLine(), "first problem");
}

// A child that never stops writing to stderr cannot grow the buffer or hold the reader.
TEST(SubprocessTest, EndlessStderrIsBoundedAndTheDeadlineHolds) {
  SubprocessOptions options;
  options.max_stderr_bytes = 4096;
  auto process =
      Subprocess::Start({"/bin/sh", "-c", "yes 'qemu: noise' >&2 & exec sleep 1000"}, options);
  ASSERT_TRUE(process) << process.error();
  auto line = (*process)->ReadLine(In(milliseconds(300)));
  ASSERT_FALSE(line);
  EXPECT_TRUE((*process)->timed_out()) << line.error();
  EXPECT_TRUE((*process)->reaped());
  EXPECT_LE((*process)->stderr_text().size(), 4096u);
  EXPECT_EQ((*process)->StderrLine(), "qemu: noise");
}

// The shell's own pid as the agent sees it, read by the shell itself: inside the
// probe's PID namespace $$ would be 1.
constexpr const char kHostPid[] = "read -r s </proc/self/stat; p=${s%% *};";

TEST(SubprocessTest, ChildSeesOnlyStdinStdoutAndStderr) {
  int leaked = ::open("/dev/null", O_RDONLY);  // deliberately without O_CLOEXEC
  ASSERT_GE(leaked, 3);
  auto process = StartShell(std::string(kHostPid) + "ls /proc/$p/fd");
  ::close(leaked);
  ASSERT_NE(process, nullptr);
  std::vector<std::string> fds;
  while (auto line = process->ReadLine(In(seconds(10)))) fds.push_back(*line);
  EXPECT_EQ(fds, (std::vector<std::string>{"0", "1", "2"}));
}

// /proc/<pid>/stat: "pid (comm) state ppid pgrp session ..."
std::vector<std::string> StatFields(const std::string& line) {
  std::vector<std::string> fields;
  size_t close = line.rfind(')');
  fields.push_back(std::string(Trim(line.substr(0, line.find(' ')))));
  for (std::string_view field : SplitWhitespace(std::string_view(line).substr(close + 1))) {
    fields.push_back(std::string(field));
  }
  return fields;  // pid, state, ppid, pgrp, session, ...
}

void ExpectOwnSessionAndGroup(bool new_pid_namespace) {
  SubprocessOptions options;
  options.new_pid_namespace = new_pid_namespace;
  auto process =
      Subprocess::Start({"/bin/sh", "-c", "read -r s </proc/self/stat; echo \"$s\""}, options);
  ASSERT_TRUE(process) << process.error();
  EXPECT_EQ((*process)->in_pid_namespace(), new_pid_namespace);
  auto line = (*process)->ReadLine(In(seconds(10)));
  ASSERT_TRUE(line) << line.error();
  std::vector<std::string> fields = StatFields(*line);
  ASSERT_GE(fields.size(), 5u) << *line;
  std::string pid = std::to_string((*process)->pid());
  EXPECT_EQ(fields[0], pid);
  EXPECT_EQ(fields[3], pid) << "process group";
  EXPECT_EQ(fields[4], pid) << "session";
  EXPECT_NE((*process)->pid(), ::getpgrp());
}

// The tests run as root (CI does): the namespace must then be there.
TEST(SubprocessTest, RunsInItsOwnSessionGroupAndPidNamespace) { ExpectOwnSessionAndGroup(true); }

TEST(SubprocessTest, WithoutANamespaceStillItsOwnSessionAndGroup) {
  ExpectOwnSessionAndGroup(false);
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

// Waits (bounded, not a sleep) for a process that is not our child to end.
bool EndsWithin(pid_t pid, int timeout_ms) {
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return errno == ESRCH;  // already gone
  pollfd exited = {fd, POLLIN, 0};
  bool ended = ::poll(&exited, 1, timeout_ms) == 1;
  ::close(fd);
  return ended;
}

// The hanging child starts a grandchild in its process group. At the deadline both
// must die and the child must be reaped, with and without the PID namespace. The
// grandchild reports its own pid as the agent sees it.
void ExpectDeadlineKillsChildAndGrandchild(bool new_pid_namespace) {
  SubprocessOptions options;
  options.new_pid_namespace = new_pid_namespace;
  auto started = Subprocess::Start(
      {"/bin/sh", "-c",
       "sh -c 'read -r s </proc/self/stat; echo ${s%% *}; exec sleep 1000' & exec sleep 1000"},
      options);
  ASSERT_TRUE(started) << started.error();
  Subprocess& process = **started;
  pid_t child = process.pid();
  auto line = process.ReadLine(In(seconds(10)));
  ASSERT_TRUE(line) << line.error();
  auto grandchild = ParseInt(*line);
  ASSERT_TRUE(grandchild.has_value()) << *line;
  int grandchild_fd = static_cast<int>(::syscall(SYS_pidfd_open, *grandchild, 0));
  ASSERT_GE(grandchild_fd, 0);

  auto start = Clock::now();
  auto next = process.ReadLine(start + milliseconds(300));
  auto waited = Clock::now() - start;
  ASSERT_FALSE(next);
  EXPECT_TRUE(process.timed_out());
  EXPECT_TRUE(process.reaped());
  EXPECT_GE(waited, milliseconds(300));
  EXPECT_TRUE(ProcessGone(child));  // killed and reaped: not even a zombie

  pollfd exited = {grandchild_fd, POLLIN, 0};
  ASSERT_EQ(::poll(&exited, 1, 10000), 1) << "the grandchild outlived the deadline";
  ::close(grandchild_fd);

  // Later calls report the end instead of touching a reused pid.
  auto how = process.Finish(In(seconds(1)));
  ASSERT_TRUE(how);
  EXPECT_EQ(*how, "killed by signal 9");
}

TEST(SubprocessTest, KillsChildAndGrandchildAtTheDeadlineAndReapsTheChild) {
  ExpectDeadlineKillsChildAndGrandchild(true);
}

TEST(SubprocessTest, WithoutANamespaceTheGroupKillStillTakesTheGrandchild) {
  ExpectDeadlineKillsChildAndGrandchild(false);
}

// A daemonising grandchild (setsid, parent exits) leaves the session and group; only
// the PID namespace takes it down with the emulator.
TEST(SubprocessTest, GrandchildThatCallsSetsidDiesWithTheChild) {
  auto process = StartShell(
      "setsid sh -c 'read -r s </proc/self/stat; echo ${s%% *}; exec sleep 1000' & read x; exit 0");
  ASSERT_NE(process, nullptr);
  ASSERT_TRUE(process->in_pid_namespace());
  auto line = process->ReadLine(In(seconds(10)));
  ASSERT_TRUE(line) << line.error();
  auto grandchild = ParseInt(*line);
  ASSERT_TRUE(grandchild.has_value()) << *line;
  auto how = process->Finish(In(seconds(10)));  // closes stdin: the shell exits 0
  ASSERT_TRUE(how) << how.error();
  EXPECT_EQ(*how, "exited with status 0");
  EXPECT_TRUE(EndsWithin(static_cast<pid_t>(*grandchild), 10000))
      << "the setsid() grandchild survived the probe";
}

// The agent SIGKILLed mid-probe: the emulator must not run on. A forked helper plays
// the agent; it starts the child, reports its pid, and is killed.
TEST(SubprocessTest, ChildDiesWhenTheAgentThatStartedItIsKilled) {
  int report[2];
  ASSERT_EQ(::pipe(report), 0);
  pid_t agent = ::fork();
  ASSERT_GE(agent, 0);
  if (agent == 0) {
    ::close(report[0]);
    auto started = Subprocess::Start({"/bin/sleep", "1000"});
    pid_t pid = started ? (*started)->pid() : -1;
    ssize_t ignored = ::write(report[1], &pid, sizeof(pid));
    (void)ignored;
    ::pause();
    ::_exit(0);
  }
  ::close(report[1]);
  pid_t emulator = -1;
  ASSERT_EQ(::read(report[0], &emulator, sizeof(emulator)), static_cast<ssize_t>(sizeof(emulator)));
  ::close(report[0]);
  ASSERT_GT(emulator, 0);
  int emulator_fd = static_cast<int>(::syscall(SYS_pidfd_open, emulator, 0));
  ASSERT_GE(emulator_fd, 0);
  ::kill(agent, SIGKILL);
  ASSERT_EQ(::waitpid(agent, nullptr, 0), agent);
  pollfd exited = {emulator_fd, POLLIN, 0};
  EXPECT_EQ(::poll(&exited, 1, 10000), 1) << "the emulator outlived the agent";
  ::close(emulator_fd);
}

// Issue 15.1: a child that greets and then streams empty lines forever. The deadline
// is checked on every line, and consumed lines cost nothing to drop.
TEST(SubprocessTest, StreamingLinesForeverCannotOutrunTheDeadline) {
  SubprocessOptions options;
  options.max_output_bytes = size_t{1} << 40;  // only the deadline can end this
  auto process = Subprocess::Start({"/bin/sh", "-c", "echo hello; exec yes ''"}, options);
  ASSERT_TRUE(process) << process.error();
  Deadline deadline = In(milliseconds(300));
  size_t lines = 0;
  Expected<std::string> line = std::string();
  while ((line = (*process)->ReadLine(deadline))) ++lines;
  EXPECT_GT(lines, 1u);
  EXPECT_TRUE((*process)->timed_out()) << line.error();
  EXPECT_TRUE((*process)->reaped());
  EXPECT_TRUE(ProcessGone((*process)->pid()));
}

TEST(SubprocessTest, OutputBeyondTheTotalCapIsAnErrorAndTheChildIsKilled) {
  SubprocessOptions options;
  options.max_output_bytes = 100000;
  auto process = Subprocess::Start({"/bin/sh", "-c", "exec yes ''"}, options);
  ASSERT_TRUE(process) << process.error();
  Expected<std::string> line = std::string();
  while ((line = (*process)->ReadLine(In(seconds(10))))) {
  }
  EXPECT_EQ(line.error(), "it wrote more than 100000 bytes of output");
  EXPECT_EQ((*process)->limit_passed(), Subprocess::Limit::kOutput);
  EXPECT_FALSE((*process)->timed_out());
  EXPECT_TRUE((*process)->reaped());
}

TEST(SubprocessTest, EndlessOutputWithoutANewlineStopsAtTheLineCap) {
  SubprocessOptions options;
  options.max_line_bytes = 100000;
  options.max_output_bytes = size_t{1} << 40;
  auto process = Subprocess::Start({"/bin/cat", "/dev/zero"}, options);
  ASSERT_TRUE(process) << process.error();
  auto line = (*process)->ReadLine(In(seconds(10)));
  ASSERT_FALSE(line);
  EXPECT_EQ(line.error(), "it wrote a line longer than 100000 bytes");
  EXPECT_EQ((*process)->limit_passed(), Subprocess::Limit::kLine);
  EXPECT_TRUE((*process)->reaped());
}

// Shutdown: a cancellation ends a wait at once, long before its deadline.
TEST(SubprocessTest, CancellationEndsAWaitAndKillsTheChild) {
  Cancellation cancel;
  SubprocessOptions options;
  options.cancel = &cancel;
  auto process = Subprocess::Start({"/bin/sh", "-c", "echo ready; exec sleep 1000"}, options);
  ASSERT_TRUE(process) << process.error();
  auto ready = (*process)->ReadLine(In(seconds(10)));
  ASSERT_TRUE(ready) << ready.error();
  std::thread canceller([&cancel] { cancel.Cancel(); });
  auto line = (*process)->ReadLine(In(seconds(600)));
  canceller.join();
  ASSERT_FALSE(line);
  EXPECT_TRUE((*process)->cancelled()) << line.error();
  EXPECT_FALSE((*process)->timed_out());
  EXPECT_TRUE((*process)->reaped());
  EXPECT_NE(line.error().find("cancelled"), std::string::npos) << line.error();
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

// A tree of its own: /bin/sh (a copy of the real dash, an ELF whose interpreter is
// /lib64/ld-linux-x86-64.so.2) with or without what it needs.
class SubprocessRootTest : public ::testing::Test {
 protected:
  void SetUp() override { root_ = testing::TempDir() + "/root"; }
  void Copy(const std::string& from, const std::string& to) {
    auto content = ReadFile(from, 64u << 20);
    ASSERT_TRUE(content) << content.error();
    testing::WriteTestFile(root_ + to, *content);
    ASSERT_EQ(::chmod((root_ + to).c_str(), 0755), 0);
  }
  void Link(const std::string& target, const std::string& name) {
    testing::WriteTestFile(root_ + name, "");
    ASSERT_EQ(::unlink((root_ + name).c_str()), 0);
    ASSERT_EQ(::symlink(target.c_str(), (root_ + name).c_str()), 0);
  }
  // The real /bin/sh and the libraries it loads, at the same paths, as a host has them.
  void InstallShell() {
    Copy("/bin/sh", "/bin/sh");
    Copy("/lib/x86_64-linux-gnu/libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6");
    Copy("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
         "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2");
    Link("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "/lib64/ld-linux-x86-64.so.2");
  }
  std::string root_;
};

TEST_F(SubprocessRootTest, RunnableInsideWantsTheInterpreterInsideTheRoot) {
  if (!PathExists("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")) {
    GTEST_SKIP() << "not an x86_64 Debian layout";
  }
  EXPECT_TRUE(RunnableInside("/", "/bin/sh"));
  Copy("/bin/sh", "/bin/sh");
  EXPECT_FALSE(RunnableInside(root_, "/bin/sh"));  // no interpreter in the tree
  // The interpreter's absolute symlink resolves inside the tree, not on this machine
  // (which has the target).
  Link("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "/lib64/ld-linux-x86-64.so.2");
  EXPECT_FALSE(RunnableInside(root_, "/bin/sh"));
  Copy("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2", "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2");
  EXPECT_TRUE(RunnableInside(root_, "/bin/sh"));
  // Scripts: their "#!" interpreter, inside the tree.
  testing::WriteTestFile(root_ + "/usr/bin/fake", "#!/bin/sh\nexit 0\n");
  testing::WriteTestFile(root_ + "/usr/bin/other", "#! /usr/bin/python3 -u\n");
  EXPECT_TRUE(RunnableInside(root_, "/usr/bin/fake"));
  EXPECT_FALSE(RunnableInside(root_, "/usr/bin/other"));
  // Neither a script nor an ELF executable, a truncated ELF, a directory, nothing.
  testing::WriteTestFile(root_ + "/usr/bin/text", "just text\n");
  testing::WriteTestFile(root_ + "/usr/bin/short",
                         "\x7f"
                         "ELF\x02\x01\x01");
  EXPECT_FALSE(RunnableInside(root_, "/usr/bin/text"));
  EXPECT_FALSE(RunnableInside(root_, "/usr/bin/short"));
  EXPECT_FALSE(RunnableInside(root_, "/usr/bin"));
  EXPECT_FALSE(RunnableInside(root_, "/usr/bin/missing"));
  EXPECT_FALSE(RunnableInside(root_, "usr/bin/fake"));  // not absolute
  EXPECT_FALSE(RunnableInside(root_ + "/no/such/root", "/bin/sh"));
}

// root_directory: the child runs chrooted, with "/" as its working directory. Root
// (CAP_SYS_CHROOT) runs it there; anyone else gets an error that names the capability.
TEST_F(SubprocessRootTest, RunsTheProgramInsideTheRootDirectory) {
  if (!PathExists("/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")) {
    GTEST_SKIP() << "not an x86_64 Debian layout";
  }
  InstallShell();
  testing::WriteTestFile(root_ + "/marker", "inside\n");
  SubprocessOptions options;
  options.root_directory = root_;
  auto process = Subprocess::Start(
      {"/bin/sh", "-c",
       "read line </marker; echo \"$line $(pwd)\"; test -e " + root_ + " || echo sealed"},
      options);
  if (::geteuid() != 0) {
    ASSERT_FALSE(process);
    EXPECT_EQ(process.error(),
              "/bin/sh: cannot start inside " + root_ +
                  ": chroot: Operation not permitted (the agent needs CAP_SYS_CHROOT)");
    return;
  }
  ASSERT_TRUE(process) << process.error();
  auto line = (*process)->ReadLine(In(seconds(10)));
  ASSERT_TRUE(line) << line.error() << (*process)->stderr_text();
  EXPECT_EQ(*line, "inside /");
  line = (*process)->ReadLine(In(seconds(10)));
  ASSERT_TRUE(line) << line.error();
  EXPECT_EQ(*line, "sealed");  // the tree's own path does not exist inside it
  auto how = (*process)->Finish(In(seconds(10)));
  ASSERT_TRUE(how) << how.error();
  EXPECT_EQ(*how, "exited with status 0");
}

TEST_F(SubprocessRootTest, AProgramMissingInsideTheRootIsAStartError) {
  InstallShell();
  SubprocessOptions options;
  options.root_directory = root_;
  auto process = Subprocess::Start({"/usr/bin/qemu-system-x86_64"}, options);
  ASSERT_FALSE(process);
  if (::geteuid() == 0) {
    EXPECT_EQ(process.error(), "/usr/bin/qemu-system-x86_64: cannot start inside " + root_ +
                                   ": No such file or directory");
  } else {
    EXPECT_NE(process.error().find("needs CAP_SYS_CHROOT"), std::string::npos) << process.error();
  }
}

}  // namespace
}  // namespace virtcaps
