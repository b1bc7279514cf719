#include "virtcaps/subprocess.h"

#include <elf.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/openat2.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <optional>

#include "virtcaps/strings.h"

extern char** environ;

namespace virtcaps {

namespace {

using Clock = std::chrono::steady_clock;

std::string ErrnoText(int error) { return std::strerror(error); }

void SetNonBlocking(int fd) {
  int flags = ::fcntl(fd, F_GETFL);
  if (flags >= 0) ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

// A pidfd (close-on-exec by definition) that polls readable once the child exits.
int OpenPidFd(pid_t pid) {
#ifdef SYS_pidfd_open
  long fd = ::syscall(SYS_pidfd_open, pid, 0);
  return fd < 0 ? -1 : static_cast<int>(fd);
#else
  (void)pid;
  return -1;
#endif
}

// write() with SIGPIPE held off for this thread: a child that closed its stdin must
// give EPIPE, not kill the agent. A SIGPIPE raised by this write is consumed.
ssize_t WriteWithoutSigpipe(int fd, const char* data, size_t size) {
  sigset_t pipe_only, old_mask, pending;
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  ::pthread_sigmask(SIG_BLOCK, &pipe_only, &old_mask);
  sigemptyset(&pending);
  ::sigpending(&pending);
  bool already_pending = sigismember(&pending, SIGPIPE) == 1;
  ssize_t n = ::write(fd, data, size);
  int error = errno;
  if (n < 0 && error == EPIPE && !already_pending) {
    struct timespec zero = {0, 0};
    while (::sigtimedwait(&pipe_only, nullptr, &zero) < 0 && errno == EINTR) {
    }
  }
  ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  errno = error;
  return n;
}

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "ended with wait status " + std::to_string(status);
}

void ClosePair(int pair[2]) {
  for (int i = 0; i < 2; ++i) {
    if (pair[i] >= 0) ::close(pair[i]);
    pair[i] = -1;
  }
}

// Everything the child needs, prepared before the clone: the child only makes system
// calls (no allocation: another thread may hold the allocator's lock at the clone).
struct ChildSetup {
  const char* program;
  char* const* argv;
  int stdin_fd, stdout_fd, stderr_fd;
  int status_fd;  // close-on-exec; gets a ChildFailure if the exec fails
  pid_t parent;
  bool in_pid_namespace;
  const char* root;  // nullptr, or the directory to chroot into before the exec
};

// What the child writes to the status pipe when it cannot exec (one write, smaller
// than PIPE_BUF, so the parent reads it whole).
struct ChildFailure {
  enum Step : int { kExec = 0, kChroot = 1 } step;
  int error;
};

void MoveTo(int fd, int target) {
  if (fd == target) {
    ::fcntl(fd, F_SETFD, 0);  // dup2 onto itself would leave close-on-exec set
  } else {
    ::dup2(fd, target);
  }
}

void CloseFrom(int first, int last) {
  if (first > last) return;
  if (::syscall(SYS_close_range, static_cast<unsigned>(first), static_cast<unsigned>(last), 0) ==
      0) {
    return;
  }
  long max = ::sysconf(_SC_OPEN_MAX);
  for (long fd = first; fd <= std::min<long>(last, max); ++fd) ::close(static_cast<int>(fd));
}

// Makes CAP_SYS_CHROOT effective if it is permitted but not effective: the container
// image gives the agent the file capability cap_sys_chroot+p (permitted only, so the
// binary still starts where the runtime does not grant it), and only the child that
// is about to chroot raises it. The exec that follows drops it again (the emulator has
// no file capabilities). System calls only: this runs in the child.
bool RaiseChrootCapability() {
  __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  if (::syscall(SYS_capget, &header, data) != 0) return false;
  const uint32_t bit = 1u << CAP_SYS_CHROOT;  // CAP_SYS_CHROOT < 32: the first word
  if ((data[0].permitted & bit) == 0 || (data[0].effective & bit) != 0) return false;
  data[0].effective |= bit;
  return ::syscall(SYS_capset, &header, data) == 0;
}

bool EnterRoot(const char* root) {
  if (::chroot(root) != 0) {
    int error = errno;
    if (error != EPERM || !RaiseChrootCapability() || ::chroot(root) != 0) {
      errno = error;  // chroot's reason, not capset's
      return false;
    }
  }
  return ::chdir("/") == 0;
}

[[noreturn]] void RunChild(const ChildSetup& setup) {
  struct sigaction default_action;
  std::memset(&default_action, 0, sizeof(default_action));
  default_action.sa_handler = SIG_DFL;
  for (int signal_number = 1; signal_number < NSIG; ++signal_number) {
    if (signal_number != SIGKILL && signal_number != SIGSTOP) {
      ::sigaction(signal_number, &default_action, nullptr);
    }
  }
  ::setsid();  // its own session and process group, led by itself
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  // The agent may have died between the clone and the prctl; then nobody would kill
  // this child. Outside a PID namespace the parent shows as getppid(); inside it is
  // invisible (0), but a pipe whose read end the agent holds reports POLLERR once it
  // is gone.
  if (!setup.in_pid_namespace && ::getppid() != setup.parent) ::_exit(127);
  pollfd agent = {setup.status_fd, POLLOUT, 0};
  if (::poll(&agent, 1, 0) == 1 && (agent.revents & POLLERR) != 0) ::_exit(127);

  MoveTo(setup.stdin_fd, STDIN_FILENO);
  MoveTo(setup.stdout_fd, STDOUT_FILENO);
  MoveTo(setup.stderr_fd, STDERR_FILENO);
  // Nothing else the agent has open reaches the child (the status pipe closes at exec).
  int keep = std::max(setup.status_fd, 2);
  CloseFrom(3, setup.status_fd - 1);
  CloseFrom(keep + 1, INT_MAX);
  sigset_t none;
  sigemptyset(&none);
  ::sigprocmask(SIG_SETMASK, &none, nullptr);
  ChildFailure failure{ChildFailure::kExec, 0};
  if (setup.root != nullptr && !EnterRoot(setup.root)) {
    failure = {ChildFailure::kChroot, errno};
  } else {
    ::execve(setup.program, setup.argv, environ);
    failure.error = errno;
  }
  ssize_t ignored = ::write(setup.status_fd, &failure, sizeof(failure));
  (void)ignored;
  ::_exit(127);
}

// fork-like clone: the child runs on a copy of this thread's stack.
pid_t CloneChild(unsigned long flags) {
  return static_cast<pid_t>(::syscall(SYS_clone, flags | SIGCHLD, nullptr, nullptr, nullptr, 0));
}

// Opens `path` (absolute, as seen inside the directory root_fd names) read-only,
// resolving every component and symlink inside that directory; -1 if that fails.
int OpenInside(int root_fd, const std::string& path, int flags) {
#ifdef SYS_openat2
  struct open_how how;
  std::memset(&how, 0, sizeof(how));
  how.flags = flags;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  long fd = ::syscall(SYS_openat2, root_fd, path.c_str(), &how, sizeof(how));
  if (fd >= 0) return static_cast<int>(fd);
  if (errno != ENOSYS) return -1;
#endif
  // A kernel without openat2 (before 5.6): relative to the root, where an absolute
  // symlink resolves outside it. Only a looser answer: what runs the program inside the
  // root is the child's chroot, not this check.
  size_t start = path.find_first_not_of('/');
  return ::openat(root_fd, start == std::string::npos ? "." : path.c_str() + start, flags);
}

// O_PATH: nothing is opened for reading (a device node named as an interpreter is
// never opened).
bool IsRegularFileInside(int root_fd, const std::string& path) {
  int fd = OpenInside(root_fd, path, O_PATH | O_CLOEXEC);
  if (fd < 0) return false;
  struct stat st;
  bool regular = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
  ::close(fd);
  return regular;
}

bool ReadAt(int fd, void* data, size_t size, uint64_t offset) {
  if (offset > static_cast<uint64_t>(INT64_MAX)) return false;
  ssize_t n = ::pread(fd, data, size, static_cast<off_t>(offset));
  return n >= 0 && static_cast<size_t>(n) == size;
}

// The ELF program interpreter of the file open as fd: "" for a static executable,
// nullopt when it is no ELF executable of this byte order (or a malformed one).
template <typename Ehdr, typename Phdr>
std::optional<std::string> ElfInterpreter(int fd) {
  Ehdr header;
  if (!ReadAt(fd, &header, sizeof(header), 0)) return std::nullopt;
  if (header.e_type != ET_EXEC && header.e_type != ET_DYN) return std::nullopt;
  if (header.e_phentsize != sizeof(Phdr) || header.e_phnum == 0 || header.e_phnum > 4096) {
    return std::nullopt;
  }
  for (uint64_t i = 0; i < header.e_phnum; ++i) {
    Phdr segment;
    if (!ReadAt(fd, &segment, sizeof(segment), header.e_phoff + i * sizeof(Phdr))) {
      return std::nullopt;
    }
    if (segment.p_type != PT_INTERP) continue;
    if (segment.p_filesz < 2 || segment.p_filesz > PATH_MAX) return std::nullopt;
    std::string interpreter(static_cast<size_t>(segment.p_filesz), '\0');
    if (!ReadAt(fd, interpreter.data(), interpreter.size(), segment.p_offset)) {
      return std::nullopt;
    }
    interpreter.resize(std::strlen(interpreter.c_str()));  // drop the NUL
    if (interpreter.empty() || interpreter[0] != '/') return std::nullopt;
    return interpreter;
  }
  return std::string();
}

}  // namespace

bool RunnableInside(const std::string& root, const std::string& program) {
  if (root.empty() || program.empty() || program[0] != '/') return false;
  int root_fd = ::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root_fd < 0) return false;
  bool runnable = false;
  int fd = OpenInside(root_fd, program, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  struct stat st;
  unsigned char start[EI_NIDENT] = {};
  if (fd >= 0 && ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
      ReadAt(fd, start, sizeof(start), 0)) {
    std::optional<std::string> interpreter;
    if (start[0] == '#' && start[1] == '!') {
      char line[256] = {};
      ssize_t n = ::pread(fd, line, sizeof(line) - 1, 2);
      std::string_view rest(line, n > 0 ? static_cast<size_t>(n) : 0);
      size_t begin = rest.find_first_not_of(" \t");
      if (begin != std::string_view::npos && rest[begin] == '/') {
        size_t end = rest.find_first_of(" \t\n", begin);
        if (end != std::string_view::npos)
          interpreter = std::string(rest.substr(begin, end - begin));
      }
    } else if (std::memcmp(start, ELFMAG, SELFMAG) == 0) {
      const unsigned char native =
          __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? ELFDATA2LSB : ELFDATA2MSB;
      if (start[EI_DATA] == native && start[EI_CLASS] == ELFCLASS64) {
        interpreter = ElfInterpreter<Elf64_Ehdr, Elf64_Phdr>(fd);
      } else if (start[EI_DATA] == native && start[EI_CLASS] == ELFCLASS32) {
        interpreter = ElfInterpreter<Elf32_Ehdr, Elf32_Phdr>(fd);
      }
    }
    if (interpreter) runnable = interpreter->empty() || IsRegularFileInside(root_fd, *interpreter);
  }
  if (fd >= 0) ::close(fd);
  ::close(root_fd);
  return runnable;
}

Cancellation::Cancellation() : fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {}

Cancellation::~Cancellation() {
  if (fd_ >= 0) ::close(fd_);
}

void Cancellation::Cancel() {
  cancelled_ = true;
  if (fd_ >= 0) {
    uint64_t one = 1;
    ssize_t ignored = ::write(fd_, &one, sizeof(one));
    (void)ignored;
  }
}

Expected<std::unique_ptr<Subprocess>> Subprocess::Start(const std::vector<std::string>& argv,
                                                        SubprocessOptions options) {
  if (argv.empty() || argv[0].empty()) return Status::Error("no program to start");
  const std::string& program = argv[0];
  // All pipe ends are close-on-exec from birth, so a child spawned concurrently by
  // another thread never inherits them; dup2 in the child clears the flag on 0/1/2.
  int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, status[2] = {-1, -1};
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0 ||
      ::pipe2(status, O_CLOEXEC) != 0) {
    int error = errno;
    ClosePair(in), ClosePair(out), ClosePair(err), ClosePair(status);
    return Status::Error(program + ": cannot create pipes: " + ErrnoText(error));
  }

  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  const char* root = options.root_directory.empty() ? nullptr : options.root_directory.c_str();
  ChildSetup setup{program.c_str(), args.data(), in[0], out[1], err[1],
                   status[1],       ::getpid(),  false, root};

  // No signal handler may run in the child before it resets them all.
  sigset_t all, old_mask;
  sigfillset(&all);
  ::pthread_sigmask(SIG_SETMASK, &all, &old_mask);
  pid_t pid = -1;
  int clone_error = 0;
  if (options.new_pid_namespace) {
    setup.in_pid_namespace = true;
    pid = CloneChild(CLONE_NEWPID);
    if (pid == 0) RunChild(setup);
  }
  if (pid < 0) {  // no privilege for a namespace (EPERM), or none asked for
    setup.in_pid_namespace = false;
    pid = CloneChild(0);
    if (pid == 0) RunChild(setup);
    clone_error = errno;
  }
  ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  ::close(in[0]), ::close(out[1]), ::close(err[1]), ::close(status[1]);
  if (pid < 0) {
    ::close(in[1]), ::close(out[0]), ::close(err[0]), ::close(status[0]);
    return Status::Error(program + ": cannot start: " + ErrnoText(clone_error));
  }
  // EOF: the exec happened (the pipe closed with it); a ChildFailure: why it did not.
  ChildFailure failure{ChildFailure::kExec, 0};
  ssize_t got;
  do {
    got = ::read(status[0], &failure, sizeof(failure));
  } while (got < 0 && errno == EINTR);
  ::close(status[0]);
  if (got > 0) {
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    ::close(in[1]), ::close(out[0]), ::close(err[0]);
    if (failure.step == ChildFailure::kChroot) {
      std::string message = program + ": cannot start inside " + options.root_directory +
                            ": chroot: " + ErrnoText(failure.error);
      if (failure.error == EPERM) message += " (the agent needs CAP_SYS_CHROOT)";
      return Status::Error(message);
    }
    std::string where = root == nullptr ? "" : " inside " + options.root_directory;
    return Status::Error(program + ": cannot start" + where + ": " + ErrnoText(failure.error));
  }

  std::unique_ptr<Subprocess> process(new Subprocess());
  process->options_ = options;
  process->pid_ = pid;
  process->in_pid_namespace_ = setup.in_pid_namespace;
  process->stdin_fd_ = in[1];
  process->stdout_fd_ = out[0];
  process->stderr_fd_ = err[0];
  process->pid_fd_ = OpenPidFd(pid);
  SetNonBlocking(process->stdin_fd_);
  SetNonBlocking(process->stdout_fd_);
  SetNonBlocking(process->stderr_fd_);
  return process;
}

Subprocess::~Subprocess() {
  Kill();
  CloseFd(stdin_fd_);
  CloseFd(stdout_fd_);
  CloseFd(stderr_fd_);
  CloseFd(pid_fd_);
}

void Subprocess::CloseFd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

void Subprocess::Kill() {
  if (reaped_ || pid_ <= 0) return;
  // Until the child is reaped its pid (= the session and group id) cannot be reused,
  // so this reaches exactly the processes it started. The first process of a PID
  // namespace takes every other process in it down when it dies.
  ::kill(-pid_, SIGKILL);
  ::kill(pid_, SIGKILL);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0) {
    if (errno != EINTR) break;
  }
  wait_status_ = status;
  reaped_ = true;
  CloseFd(stdin_fd_);
  CloseFd(pid_fd_);
  ReadStderr();  // what it wrote before it died (it cannot block: non-blocking)
}

bool Subprocess::HasExited() {
  if (reaped_) return true;
  siginfo_t info;
  std::memset(&info, 0, sizeof(info));
  if (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) != 0) {
    // ECHILD: already reaped elsewhere (SIGCHLD ignored, or a waitpid(-1)); it is gone.
    if (errno == ECHILD) reaped_ = true;
    return reaped_;
  }
  return info.si_pid != 0;
}

void Subprocess::ReadStderr() {
  char chunk[4096];
  // Bounded per call, so a writer that never stops cannot keep the reader here; only
  // the tail is kept, where an emulator's last words are.
  for (size_t total = 0; stderr_fd_ >= 0 && total < (1u << 20);) {
    ssize_t n = ::read(stderr_fd_, chunk, sizeof(chunk));
    if (n > 0) {
      total += static_cast<size_t>(n);
      stderr_.append(chunk, static_cast<size_t>(n));
      if (stderr_.size() > options_.max_stderr_bytes) {
        size_t drop = stderr_.size() - options_.max_stderr_bytes;
        stderr_.erase(0, drop);
        stderr_dropped_ += drop;
      }
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    CloseFd(stderr_fd_);  // EOF or a hard error
  }
}

void Subprocess::ReadStdout() {
  if (stdout_fd_ < 0) return;
  char chunk[65536];
  ssize_t n;
  do {
    n = ::read(stdout_fd_, chunk, sizeof(chunk));
  } while (n < 0 && errno == EINTR);
  if (n < 0 && errno == EAGAIN) return;
  if (n <= 0) {
    CloseFd(stdout_fd_);
    stdout_eof_ = true;
    return;
  }
  size_t size = static_cast<size_t>(n);
  stdout_total_ += size;
  if (stdout_total_ > options_.max_output_bytes) {
    limit_passed_ = Limit::kOutput;
    limit_error_ =
        "it wrote more than " + std::to_string(options_.max_output_bytes) + " bytes of output";
    CloseFd(stdout_fd_);  // not a byte more is read
    return;
  }
  // Only the bytes after the last '\n' so far can make a line too long.
  const void* last_newline = ::memrchr(chunk, '\n', size);
  if (last_newline == nullptr) {
    open_line_ += size;
  } else {
    open_line_ = size - 1 - static_cast<size_t>(static_cast<const char*>(last_newline) - chunk);
  }
  if (open_line_ > options_.max_line_bytes) {
    limit_passed_ = Limit::kLine;
    limit_error_ =
        "it wrote a line longer than " + std::to_string(options_.max_line_bytes) + " bytes";
    CloseFd(stdout_fd_);
    return;
  }
  buffer_.append(chunk, size);
}

bool Subprocess::Pump(Deadline deadline, bool want_write, bool want_exit) {
  if (options_.cancel != nullptr && options_.cancel->cancelled()) {
    cancelled_ = true;
    return false;
  }
  auto now = Clock::now();
  if (now >= deadline) return false;
  // Round up so a wait never ends just short of the deadline and spins.
  auto remaining = std::chrono::ceil<std::chrono::milliseconds>(deadline - now).count();
  int timeout = static_cast<int>(std::min<long long>(remaining, 1 << 30));

  pollfd fds[5];
  nfds_t count = 0;
  int out_index = -1, err_index = -1, cancel_index = -1;
  if (stdout_fd_ >= 0) out_index = static_cast<int>(count), fds[count++] = {stdout_fd_, POLLIN, 0};
  if (stderr_fd_ >= 0) err_index = static_cast<int>(count), fds[count++] = {stderr_fd_, POLLIN, 0};
  if (options_.cancel != nullptr && options_.cancel->fd() >= 0) {
    cancel_index = static_cast<int>(count), fds[count++] = {options_.cancel->fd(), POLLIN, 0};
  }
  if (want_exit && pid_fd_ >= 0) fds[count++] = {pid_fd_, POLLIN, 0};
  // POLLOUT also reports POLLERR once the reader is gone, which ends the wait.
  if (want_write && stdin_fd_ >= 0) fds[count++] = {stdin_fd_, POLLOUT, 0};
  int ready = ::poll(fds, count, timeout);
  if (ready < 0) return errno == EINTR;
  if (ready == 0) return Clock::now() < deadline;
  if (cancel_index >= 0 && fds[cancel_index].revents != 0) {
    cancelled_ = true;
    return false;
  }
  if (out_index >= 0 && fds[out_index].revents != 0) ReadStdout();
  if (err_index >= 0 && fds[err_index].revents != 0) ReadStderr();
  return true;
}

Status Subprocess::Stopped(const std::string& while_doing) {
  if (!cancelled_) timed_out_ = true;
  Kill();
  if (cancelled_) return Status::Error("cancelled " + while_doing + " (the agent is stopping)");
  return Status::Error("deadline passed " + while_doing);
}

Status Subprocess::WriteLine(std::string_view line, Deadline deadline) {
  std::string data(line);
  data += '\n';
  size_t done = 0;
  while (done < data.size()) {
    if (stdin_fd_ < 0) return Status::Error("its input is closed");
    ssize_t n = WriteWithoutSigpipe(stdin_fd_, data.data() + done, data.size() - done);
    if (n >= 0) {
      done += static_cast<size_t>(n);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EPIPE) {
      CloseFd(stdin_fd_);
      return Status::Error("it closed its input");
    }
    if (errno != EAGAIN) return Status::Error("cannot write to it: " + ErrnoText(errno));
    if (!Pump(deadline, true, false)) return Stopped("while writing to it");
    if (!limit_error_.empty()) {
      Kill();
      return Status::Error(limit_error_);
    }
  }
  return Status();
}

Expected<std::string> Subprocess::ReadLine(Deadline deadline) {
  while (true) {
    if (!limit_error_.empty()) {
      Kill();
      return Status::Error(limit_error_);
    }
    // Checked whatever is buffered: a child streaming lines cannot outrun the deadline.
    if (Clock::now() >= deadline) return Stopped("before it wrote a line");
    if (options_.cancel != nullptr && options_.cancel->cancelled()) {
      cancelled_ = true;
      return Stopped("before it wrote a line");
    }
    size_t newline = buffer_.find('\n', scanned_);
    if (newline != std::string::npos) {
      std::string line = buffer_.substr(start_, newline - start_);
      start_ = scanned_ = newline + 1;
      // Drop consumed bytes only once they are most of the buffer: linear overall.
      if (start_ == buffer_.size()) {
        buffer_.clear();
        start_ = scanned_ = 0;
      } else if (start_ > (64u << 10) && start_ > buffer_.size() / 2) {
        buffer_.erase(0, start_);
        scanned_ -= start_;
        start_ = 0;
      }
      return line;
    }
    scanned_ = buffer_.size();
    if (stdout_eof_) {
      if (start_ == buffer_.size()) return Status::Error("it closed its output");
      std::string line = buffer_.substr(start_);
      buffer_.clear();
      start_ = scanned_ = 0;
      return line;
    }
    if (reaped_) return Status::Error("it was stopped");  // killed earlier
    if (!Pump(deadline, false, false)) return Stopped("before it wrote a line");
  }
}

Expected<std::string> Subprocess::Finish(Deadline deadline) {
  CloseFd(stdin_fd_);
  while (!HasExited()) {
    if (pid_fd_ < 0 && stdout_fd_ < 0 && stderr_fd_ < 0) {
      // Without a pidfd there is nothing left to wait on but a clock: stop it now.
      break;
    }
    if (!Pump(deadline, false, true)) return Stopped("before it exited");
  }
  // It has exited (a zombie until reaped): take what output is already there, stop
  // anything it left running, and reap it.
  ReadStdout();
  ReadStderr();
  Kill();
  return DescribeWaitStatus(wait_status_);
}

std::string Subprocess::StderrLine() const {
  std::vector<std::string_view> lines = Split(stderr_, '\n');
  // When the start was dropped, the first kept line may be a fragment: take the last
  // complete line instead.
  if (stderr_dropped_ > 0 && !lines.empty()) {
    lines.erase(lines.begin());
    // A writer killed mid-line leaves a fragment at the end as well.
    if (!lines.empty() && !stderr_.empty() && stderr_.back() != '\n') lines.pop_back();
    std::reverse(lines.begin(), lines.end());
  }
  for (std::string_view line : lines) {
    std::string_view trimmed = Trim(line);
    if (!trimmed.empty()) return std::string(trimmed.substr(0, 200));
  }
  return "";
}

}  // namespace virtcaps
