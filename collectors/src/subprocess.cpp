#include "virtcaps/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "virtcaps/strings.h"

extern char** environ;

namespace virtcaps {

namespace {

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

// Owns the spawn attribute objects for the duration of posix_spawn.
struct SpawnSetup {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attributes;
  SpawnSetup() {
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attributes);
  }
  ~SpawnSetup() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attributes);
  }
  SpawnSetup(const SpawnSetup&) = delete;
  SpawnSetup& operator=(const SpawnSetup&) = delete;
};

void ClosePair(int pair[2]) {
  for (int i = 0; i < 2; ++i) {
    if (pair[i] >= 0) ::close(pair[i]);
    pair[i] = -1;
  }
}

}  // namespace

Expected<std::unique_ptr<Subprocess>> Subprocess::Start(const std::vector<std::string>& argv,
                                                        SubprocessOptions options) {
  if (argv.empty() || argv[0].empty()) return Status::Error("no program to start");
  const std::string& program = argv[0];
  // All pipe ends are close-on-exec from birth, so a child spawned concurrently by
  // another thread never inherits them; dup2 in the child clears the flag on 0/1/2.
  int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
  if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(err, O_CLOEXEC) != 0) {
    int error = errno;
    ClosePair(in), ClosePair(out), ClosePair(err);
    return Status::Error(program + ": cannot create pipes: " + ErrnoText(error));
  }

  SpawnSetup setup;
  posix_spawn_file_actions_adddup2(&setup.actions, in[0], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&setup.actions, out[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&setup.actions, err[1], STDERR_FILENO);
  // Anything else the agent has open without O_CLOEXEC stays out of the child too.
  posix_spawn_file_actions_addclosefrom_np(&setup.actions, 3);

  sigset_t empty, all;
  sigemptyset(&empty);
  sigfillset(&all);
  sigdelset(&all, SIGKILL);
  sigdelset(&all, SIGSTOP);
  posix_spawnattr_setsigmask(&setup.attributes, &empty);
  posix_spawnattr_setsigdefault(&setup.attributes, &all);
  posix_spawnattr_setpgroup(&setup.attributes, 0);  // its own group, led by itself
  posix_spawnattr_setflags(
      &setup.attributes,
      static_cast<short>(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF));

  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);

  pid_t pid = -1;
  int spawn_error =
      ::posix_spawn(&pid, program.c_str(), &setup.actions, &setup.attributes, args.data(), environ);
  ::close(in[0]), ::close(out[1]), ::close(err[1]);
  if (spawn_error != 0) {
    ::close(in[1]), ::close(out[0]), ::close(err[0]);
    return Status::Error(program + ": cannot start: " + ErrnoText(spawn_error));
  }

  std::unique_ptr<Subprocess> process(new Subprocess());
  process->options_ = options;
  process->pid_ = pid;
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
  // Until the leader is reaped its pid (= the group id) cannot be reused, so this
  // reaches exactly the processes it started, grandchildren included.
  ::kill(-pid_, SIGKILL);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0) {
    if (errno != EINTR) break;
  }
  wait_status_ = status;
  reaped_ = true;
  CloseFd(stdin_fd_);
  CloseFd(pid_fd_);
  ReadStderr();  // what the group wrote before it died (it cannot block: non-blocking)
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
  // Bounded per call, so a writer that never stops cannot keep the reader here.
  for (size_t total = 0; stderr_fd_ >= 0 && total < (1u << 20);) {
    ssize_t n = ::read(stderr_fd_, chunk, sizeof(chunk));
    if (n > 0) {
      total += static_cast<size_t>(n);
      size_t room = options_.max_stderr_bytes - std::min(stderr_.size(), options_.max_stderr_bytes);
      stderr_.append(chunk, std::min(room, static_cast<size_t>(n)));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    CloseFd(stderr_fd_);  // EOF or a hard error
  }
}

bool Subprocess::ReadStdout() {
  char chunk[65536];
  while (stdout_fd_ >= 0) {
    ssize_t n = ::read(stdout_fd_, chunk, sizeof(chunk));
    if (n > 0) {
      buffer_.append(chunk, static_cast<size_t>(n));
      if (buffer_.size() > options_.max_line_bytes) return true;  // ReadLine reports it
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return true;
    CloseFd(stdout_fd_);
    stdout_eof_ = true;
  }
  return false;
}

bool Subprocess::Pump(Deadline deadline, bool want_write, bool want_exit) {
  auto now = std::chrono::steady_clock::now();
  if (now >= deadline) return false;
  // Round up so a wait never ends just short of the deadline and spins.
  auto remaining = std::chrono::ceil<std::chrono::milliseconds>(deadline - now).count();
  int timeout = static_cast<int>(std::min<long long>(remaining, 1 << 30));

  pollfd fds[4];
  nfds_t count = 0;
  int out_index = -1, err_index = -1;
  if (stdout_fd_ >= 0) out_index = static_cast<int>(count), fds[count++] = {stdout_fd_, POLLIN, 0};
  if (stderr_fd_ >= 0) err_index = static_cast<int>(count), fds[count++] = {stderr_fd_, POLLIN, 0};
  if (want_exit && pid_fd_ >= 0) fds[count++] = {pid_fd_, POLLIN, 0};
  // POLLOUT also reports POLLERR once the reader is gone, which ends the wait.
  if (want_write && stdin_fd_ >= 0) fds[count++] = {stdin_fd_, POLLOUT, 0};
  int ready = ::poll(fds, count, timeout);
  if (ready < 0) return errno == EINTR;
  if (ready == 0) return std::chrono::steady_clock::now() < deadline;
  if (out_index >= 0 && fds[out_index].revents != 0) ReadStdout();
  if (err_index >= 0 && fds[err_index].revents != 0) ReadStderr();
  return true;
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
    if (!Pump(deadline, true, false)) {
      timed_out_ = true;
      Kill();
      return Status::Error("deadline passed while writing to it");
    }
  }
  return Status();
}

Expected<std::string> Subprocess::ReadLine(Deadline deadline) {
  size_t scanned = 0;
  while (true) {
    size_t newline = buffer_.find('\n', scanned);
    if (newline != std::string::npos) {
      std::string line = buffer_.substr(0, newline);
      buffer_.erase(0, newline + 1);
      return line;
    }
    scanned = buffer_.size();
    if (buffer_.size() > options_.max_line_bytes) {
      return Status::Error("it wrote a line longer than " +
                           std::to_string(options_.max_line_bytes) + " bytes");
    }
    if (stdout_eof_) {
      if (buffer_.empty()) return Status::Error("it closed its output");
      std::string line = std::move(buffer_);
      buffer_.clear();
      return line;
    }
    if (reaped_) {  // killed earlier: nothing more will come
      return Status::Error("it was stopped");
    }
    if (!Pump(deadline, false, false)) {
      timed_out_ = true;
      Kill();
      return Status::Error("deadline passed before it wrote a line");
    }
  }
}

Expected<std::string> Subprocess::Finish(Deadline deadline) {
  CloseFd(stdin_fd_);
  while (!HasExited()) {
    if (pid_fd_ < 0 && stdout_fd_ < 0 && stderr_fd_ < 0) {
      // Without a pidfd there is nothing left to wait on but a clock: stop it now.
      break;
    }
    if (!Pump(deadline, false, true)) {
      timed_out_ = true;
      Kill();
      return Status::Error("deadline passed before it exited");
    }
  }
  // It has exited (a zombie until reaped): take what output is already there, stop
  // anything it left running in its group, and reap it.
  ReadStdout();
  ReadStderr();
  Kill();
  return DescribeWaitStatus(wait_status_);
}

std::string Subprocess::FirstStderrLine() const {
  for (std::string_view line : Split(stderr_, '\n')) {
    std::string_view trimmed = Trim(line);
    if (!trimmed.empty()) return std::string(trimmed.substr(0, 200));
  }
  return "";
}

}  // namespace virtcaps
