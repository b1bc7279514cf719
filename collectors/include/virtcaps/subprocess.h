// A child program driven over pipes, line by line, against a deadline, with hard caps
// on what is buffered from it. It is started without a shell, with only
// stdin/stdout/stderr open, in a session of its own and, where the kernel allows
// (CAP_SYS_ADMIN), as the first process of a new PID namespace: killing it then makes
// the kernel kill every process it started, even one that called setsid() and whose
// parent has exited. Without the namespace the session's process group is killed (a
// descendant that left the group survives; README's security section says so). The
// child also gets SIGKILL when the thread that started it dies (PR_SET_PDEATHSIG), so a
// SIGKILLed agent leaves no emulator behind. Whatever happens, the child is killed and
// reaped before the Subprocess is gone. It may run inside another root directory
// (SubprocessOptions::root_directory).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "virtcaps/status.h"

namespace virtcaps {

using Deadline = std::chrono::steady_clock::time_point;

// A one-way "stop now" flag that a poll() can wait on (an eventfd): the agent's
// shutdown cancels probes in flight instead of waiting out their timeout.
class Cancellation {
 public:
  Cancellation();
  ~Cancellation();
  Cancellation(const Cancellation&) = delete;
  Cancellation& operator=(const Cancellation&) = delete;
  void Cancel();
  bool cancelled() const { return cancelled_.load(); }
  int fd() const { return fd_; }  // readable once cancelled; -1 if no eventfd

 private:
  std::atomic<bool> cancelled_{false};
  int fd_ = -1;
};

struct SubprocessOptions {
  size_t max_stderr_bytes = 8u << 10;    // the last this many bytes of stderr are kept
  size_t max_line_bytes = 1u << 20;      // a longer stdout line is an error
  size_t max_output_bytes = 4u << 20;    // more stdout than this in all is an error
  bool new_pid_namespace = true;         // try one (falls back silently without privilege)
  const Cancellation* cancel = nullptr;  // when set and cancelled, every wait ends at once
  // When not empty, the child chroot()s into this directory (and chdir()s to its "/")
  // just before the exec, and argv[0] names the program as seen inside it. That is how
  // a host's emulator runs against the host's own libraries, modules and data files
  // when the agent sees the host under --path.rootfs (a container). It needs
  // CAP_SYS_CHROOT; without it Start fails and says so.
  std::string root_directory;
};

// Whether `program` (an absolute path as seen inside `root`) can run with `root` as its
// root directory: a script whose "#!" interpreter is in `root`, an ELF executable of
// this machine's byte order whose program interpreter (PT_INTERP) is in `root`, or a
// static one. Paths resolve inside `root` (symlinks included, RESOLVE_IN_ROOT where the
// kernel has openat2). False for anything else, e.g. a test tree without an
// interpreter, whose scripts must then run as they are.
bool RunnableInside(const std::string& root, const std::string& program);

class Subprocess {
 public:
  // Starts argv[0] (a path; PATH is not searched) with argv. The environment is the
  // caller's; signal dispositions and mask are reset to defaults in the child.
  static Expected<std::unique_ptr<Subprocess>> Start(const std::vector<std::string>& argv,
                                                     SubprocessOptions options = {});
  ~Subprocess();  // kills the child (and its namespace or group) and reaps it if needed
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  pid_t pid() const { return pid_; }  // also its session and process group id
  bool in_pid_namespace() const { return in_pid_namespace_; }

  // Writes `line` and a '\n' to the child's stdin. At the deadline the child is killed.
  Status WriteLine(std::string_view line, Deadline deadline);
  // The next stdout line, without its '\n' (a final line without one is returned at
  // EOF). The deadline is checked on every call, whatever is buffered. Errors: the
  // child closed stdout (see closed()), the deadline passed (timed_out()), the probe
  // was cancelled (cancelled()), or a cap was passed (limit_passed()); in the last three
  // cases the child has been killed and reaped.
  Expected<std::string> ReadLine(Deadline deadline);
  bool timed_out() const { return timed_out_; }
  bool cancelled() const { return cancelled_; }
  // Which cap was passed, if one was.
  enum class Limit { kNone, kLine, kOutput };
  Limit limit_passed() const { return limit_passed_; }
  bool closed() const { return stdout_eof_ && start_ == buffer_.size(); }

  // Closes stdin, then waits for the child to exit, reading its output meanwhile. At
  // the deadline the child is killed. Whatever the outcome, every process left in its
  // namespace or group is killed and the child is reaped. Returns a description of how
  // it ended: "exited with status N" or "killed by signal N".
  Expected<std::string> Finish(Deadline deadline);
  // SIGKILL to the child's namespace or group, then reap. Safe to call more than once.
  void Kill();

  bool reaped() const { return reaped_; }
  // The tail of stderr (at most max_stderr_bytes) and whether earlier bytes were dropped.
  const std::string& stderr_text() const { return stderr_; }
  bool stderr_truncated() const { return stderr_dropped_ > 0; }
  // One line of stderr for an error message: the first non-empty one, or the last
  // complete one when the start was dropped.
  std::string StderrLine() const;
  std::string FirstStderrLine() const { return StderrLine(); }

 private:
  Subprocess() = default;
  // Waits until stdout/stderr are readable (or stdin writable, or the child exited, as
  // asked) or the deadline passes or the probe is cancelled, and reads what is there.
  // False at the deadline or on cancellation (cancelled_ tells which).
  bool Pump(Deadline deadline, bool want_write, bool want_exit);
  void ReadStderr();
  void ReadStdout();  // one read; past a cap it stops reading and records why
  bool HasExited();   // the child is a zombie (not reaped yet) or reaped
  void CloseFd(int& fd);
  Status Stopped(const std::string& while_doing);  // kills, and says why it stopped

  SubprocessOptions options_;
  pid_t pid_ = -1;
  bool in_pid_namespace_ = false;
  int stdin_fd_ = -1;
  int stdout_fd_ = -1;
  int stderr_fd_ = -1;
  int pid_fd_ = -1;     // pidfd, readable when the child exits; -1 on kernels without it
  std::string buffer_;  // stdout bytes; lines before start_ were handed out already
  size_t start_ = 0;
  size_t scanned_ = 0;  // no '\n' in buffer_[start_, scanned_)
  size_t stdout_total_ = 0;
  size_t open_line_ = 0;  // stdout bytes since the last '\n'
  std::string limit_error_;
  Limit limit_passed_ = Limit::kNone;
  std::string stderr_;
  size_t stderr_dropped_ = 0;
  bool stdout_eof_ = false;
  bool timed_out_ = false;
  bool cancelled_ = false;
  bool reaped_ = false;
  int wait_status_ = 0;
};

}  // namespace virtcaps
