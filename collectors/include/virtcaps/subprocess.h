// A child program driven over pipes, line by line, against a deadline. It is started
// with posix_spawn (no shell) as the leader of its own process group, with only
// stdin/stdout/stderr open; whatever happens, the whole group is killed with SIGKILL
// and the child is reaped before the Subprocess is gone, so nothing is left behind.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "virtcaps/status.h"

namespace virtcaps {

using Deadline = std::chrono::steady_clock::time_point;

struct SubprocessOptions {
  size_t max_stderr_bytes = 64u << 10;  // stderr beyond this is read and dropped
  size_t max_line_bytes = 8u << 20;     // a longer stdout line is an error
};

class Subprocess {
 public:
  // Starts argv[0] (a path; PATH is not searched) with argv. The environment is the
  // caller's; signal dispositions and mask are reset to defaults in the child.
  static Expected<std::unique_ptr<Subprocess>> Start(const std::vector<std::string>& argv,
                                                     SubprocessOptions options = {});
  ~Subprocess();  // kills the process group and reaps the child if still needed
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  pid_t pid() const { return pid_; }  // also the process group id

  // Writes `line` and a '\n' to the child's stdin. At the deadline the group is killed.
  Status WriteLine(std::string_view line, Deadline deadline);
  // The next stdout line, without its '\n' (a final line without one is returned at
  // EOF). Errors: the child closed stdout (see closed()), the deadline passed (see
  // timed_out(); the group is then killed and reaped), or the line is too long.
  Expected<std::string> ReadLine(Deadline deadline);
  bool timed_out() const { return timed_out_; }
  bool closed() const { return stdout_eof_ && buffer_.empty(); }

  // Closes stdin, then waits for the child to exit, reading its output meanwhile. At
  // the deadline the group is killed. Whatever the outcome, every process left in the
  // group is killed and the child is reaped. Returns a description of how it ended:
  // "exited with status N" or "killed by signal N".
  Expected<std::string> Finish(Deadline deadline);
  // SIGKILL to the process group, then reap. Safe to call more than once.
  void Kill();

  bool reaped() const { return reaped_; }
  // stderr read so far (at most max_stderr_bytes), and its first non-empty line.
  const std::string& stderr_text() const { return stderr_; }
  std::string FirstStderrLine() const;

 private:
  Subprocess() = default;
  // Waits until stdout/stderr are readable (or stdin writable, or the child exited, as
  // asked) or the deadline passes, and reads what is there. False at the deadline.
  bool Pump(Deadline deadline, bool want_write, bool want_exit);
  void ReadStderr();
  bool ReadStdout();  // false at EOF
  bool HasExited();   // the child is a zombie (not reaped yet) or reaped
  void CloseFd(int& fd);

  SubprocessOptions options_;
  pid_t pid_ = -1;
  int stdin_fd_ = -1;
  int stdout_fd_ = -1;
  int stderr_fd_ = -1;
  int pid_fd_ = -1;  // pidfd, readable when the child exits; -1 on kernels without it
  std::string buffer_;
  std::string stderr_;
  bool stdout_eof_ = false;
  bool timed_out_ = false;
  bool reaped_ = false;
  int wait_status_ = 0;
};

}  // namespace virtcaps
